//! The vertical cup-to-disc ratio (vCDR) of predicted masks against the experts' mean, and of
//! the experts' own masks against it: the floor a model's masks are measured from.
//!
//! Drishti-GS1's experts state their ratios as numbers (`roi_index.csv`), read on the full
//! photographs by their own method; the masks are the majority of the experts' outlines. The
//! ratio the masks give (bounding-box rows, `msnet_labels::DiscCup`) need not equal the stated
//! one, so a model that reproduced the masks exactly would still have this error.

use msnet_labels::DiscCup;
use serde_json::json;

/// (image, a ratio, the experts' mean ratio) per image.
#[derive(Default)]
struct RatioErrors(Vec<(String, f64, f64)>);

impl RatioErrors {
    fn mean(&self, f: impl Fn(f64, f64) -> f64) -> f64 {
        let n = self.0.len().max(1) as f64;
        self.0.iter().map(|&(_, p, e)| f(p, e)).sum::<f64>() / n
    }

    /// Mean absolute error against the experts.
    fn mae(&self) -> f64 {
        self.mean(|p, e| (p - e).abs())
    }

    /// Mean signed error (ratio − experts): below zero, the cup reads too small.
    fn bias(&self) -> f64 {
        self.mean(|p, e| p - e)
    }

    /// Pearson's correlation of the ratios and the experts'; `None` below 2 images or when
    /// either side does not vary.
    fn correlation(&self) -> Option<f64> {
        let (mp, me) = (self.mean(|p, _| p), self.mean(|_, e| e));
        let cov = self.mean(|p, e| (p - mp) * (e - me));
        let sd =
            |m: f64, pick: fn(f64, f64) -> f64| self.mean(|p, e| (pick(p, e) - m).powi(2)).sqrt();
        let denominator = sd(mp, |p, _| p) * sd(me, |_, e| e);
        (self.0.len() >= 2 && denominator > 0.0).then(|| cov / denominator)
    }

    fn summary_json(&self) -> serde_json::Value {
        json!({
            "mae": self.mae(),
            "bias": self.bias(),
            "pearson_r": self.correlation(),
            "images": self.0.len(),
        })
    }

    fn summary_line(&self) -> String {
        format!(
            "MAE {:.4}, bias {:+.4}, r {}",
            self.mae(),
            self.bias(),
            self.correlation()
                .map_or("n/a".to_string(), |r| format!("{r:.3}"))
        )
    }
}

/// Predicted vCDR against the experts' mean, per image, beside the experts' masks' own.
#[derive(Default)]
pub struct VcdrReport {
    /// Images where the prediction holds a disc, so a ratio can be read.
    predicted: RatioErrors,
    /// Images where the prediction holds no disc.
    no_disc: Vec<String>,
    /// The ratio of the true label map, for every image whose map holds a disc.
    experts_masks: RatioErrors,
}

impl VcdrReport {
    /// Adds one image: its `[predicted, true]` label maps (`[H][width]`) and the experts' mean
    /// ratio.
    pub fn add(
        &mut self,
        disc_cup: DiscCup,
        name: &str,
        [predicted, truth]: [&[u8]; 2],
        width: usize,
        expert: f64,
    ) {
        match disc_cup.measure(predicted, width).vertical_cdr() {
            Some(v) => self.predicted.0.push((name.to_string(), v, expert)),
            None => self.no_disc.push(name.to_string()),
        }
        if let Some(v) = disc_cup.measure(truth, width).vertical_cdr() {
            self.experts_masks.0.push((name.to_string(), v, expert));
        }
    }

    /// The report's JSON: the definition, the predictions' MAE, bias and correlation, the
    /// experts' masks' as the floor, and every image.
    pub fn json(&self) -> serde_json::Value {
        let per_image: Vec<serde_json::Value> = self
            .predicted
            .0
            .iter()
            .map(|(n, p, x)| json!({"name": n, "predicted": p, "experts_mean": x}))
            .collect();
        let mut out = self.predicted.summary_json();
        out["definition"] = json!(
            "vertical extent of the cup over that of the disc (rim + cup), bounding-box rows; against the mean of the 4 experts (roi_index.csv)"
        );
        out["no_disc_predicted"] = json!(self.no_disc);
        out["experts_masks"] = self.experts_masks.summary_json();
        out["per_image"] = json!(per_image);
        out
    }

    /// The report's line of a printed table.
    pub fn line(&self) -> String {
        format!(
            "vertical cup-to-disc ratio: {} against the experts' mean over {} images{}; \
             the experts' masks: {}",
            self.predicted.summary_line(),
            self.predicted.0.len(),
            if self.no_disc.is_empty() {
                String::new()
            } else {
                format!(" ({} with no predicted disc left out)", self.no_disc.len())
            },
            self.experts_masks.summary_line(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1-wide map of `rows` rows: disc (rim 1) on `disc`, cup (2) on `cup`, both as
    /// first..last row.
    fn column(rows: usize, disc: (usize, usize), cup: (usize, usize)) -> Vec<u8> {
        (0..rows)
            .map(|r| {
                if (cup.0..=cup.1).contains(&r) {
                    2
                } else {
                    u8::from((disc.0..=disc.1).contains(&r))
                }
            })
            .collect()
    }

    #[test]
    fn predictions_and_the_experts_masks_are_scored_alike() {
        let dc = DiscCup::new(3).unwrap();
        let mut r = VcdrReport::default();
        // Image a: predicted 4/10, masks 5/10, experts 0.5. Image b: no predicted disc,
        // masks 3/10, experts 0.4.
        let truth_a = column(12, (1, 10), (3, 7));
        r.add(dc, "a", [&column(12, (1, 10), (3, 6)), &truth_a], 1, 0.5);
        r.add(dc, "b", [&[0; 12], &column(12, (1, 10), (4, 6))], 1, 0.4);
        assert_eq!(r.no_disc, ["b"]);
        assert!((r.predicted.mae() - 0.1).abs() < 1e-12);
        assert!((r.predicted.bias() + 0.1).abs() < 1e-12);
        assert_eq!(r.predicted.correlation(), None, "one image");
        let masks = &r.experts_masks;
        assert_eq!(masks.0.len(), 2);
        assert!((masks.mae() - 0.05).abs() < 1e-12, "{}", masks.mae());
        assert!((masks.bias() + 0.05).abs() < 1e-12);
        let j = r.json();
        assert_eq!(j["images"], 1);
        assert_eq!(j["experts_masks"]["images"], 2);
        assert!(
            r.line().contains("the experts' masks: MAE 0.0500"),
            "{}",
            r.line()
        );
    }
}
