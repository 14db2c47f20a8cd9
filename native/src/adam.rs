//! Adam (β 0.9 / 0.999, PyTorch's form, as burn implements it) over the kernel-layout
//! weights, and its state as a checkpoint file.
//!
//! `m ← β1 m + (1 − β1) g`, `v ← β2 v + (1 − β2) g²`,
//! `w ← w − lr · (m / (1 − β1^t)) / (√(v / (1 − β2^t)) + ε)`.
//!
//! The state file is safetensors: per layer `{name}.exp_avg` and `{name}.exp_avg_sq` in the
//! weight file's layout and shapes (so the moments line up with `model.safetensors`), and
//! the step count and hyper-parameters in the metadata.

use std::collections::HashMap;

use msnet::Spec;
use msnet::weights::{from_kernel_layout, to_kernel_layout};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};

/// Adam's moments and step count, per layer in the kernel layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam {
    pub beta1: f32,
    pub beta2: f32,
    pub epsilon: f32,
    /// Steps taken.
    pub steps: u64,
    m: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl Adam {
    /// Zero moments for weights of these lengths.
    pub fn new(lens: impl IntoIterator<Item = usize>, epsilon: f32) -> Self {
        let m: Vec<Vec<f32>> = lens.into_iter().map(|n| vec![0.0; n]).collect();
        Self {
            beta1: 0.9,
            beta2: 0.999,
            epsilon,
            steps: 0,
            v: m.clone(),
            m,
        }
    }

    /// One step at learning rate `lr`.
    pub fn step(&mut self, params: &mut [Vec<f32>], grads: &[Vec<f32>], lr: f64) {
        self.steps += 1;
        let t = self.steps as i32;
        let c1 = 1.0 - (self.beta1 as f64).powi(t);
        let c2 = 1.0 - (self.beta2 as f64).powi(t);
        let (b1, b2, eps) = (self.beta1, self.beta2, self.epsilon);
        let (inv_c1, inv_c2, lr) = ((1.0 / c1) as f32, (1.0 / c2) as f32, lr as f32);
        for (((w, g), m), v) in params
            .iter_mut()
            .zip(grads)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            for (((w, &g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= lr * (*m * inv_c1) / ((*v * inv_c2).sqrt() + eps);
            }
        }
    }

    /// The state file's bytes.
    pub fn to_bytes(&self, spec: &Spec) -> Result<Vec<u8>, String> {
        let mut names = Vec::new();
        let mut data: Vec<Vec<u8>> = Vec::new();
        for (c, (m, v)) in spec.convs.iter().zip(self.m.iter().zip(&self.v)) {
            for (suffix, moment) in [("exp_avg", m), ("exp_avg_sq", v)] {
                names.push((format!("{}.{suffix}", c.name), c.shape()));
                let file = from_kernel_layout(c, moment);
                data.push(file.iter().flat_map(|x| x.to_le_bytes()).collect());
            }
        }
        let views = names
            .into_iter()
            .zip(&data)
            .map(|((name, shape), bytes)| {
                TensorView::new(Dtype::F32, shape, bytes)
                    .map(|v| (name, v))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let meta = HashMap::from([
            ("format".to_string(), "msnet-adam".to_string()),
            ("steps".to_string(), self.steps.to_string()),
            ("beta1".to_string(), self.beta1.to_string()),
            ("beta2".to_string(), self.beta2.to_string()),
            ("epsilon".to_string(), self.epsilon.to_string()),
        ]);
        safetensors::serialize(views, Some(meta)).map_err(|e| e.to_string())
    }

    /// Reads a state file written by [`Self::to_bytes`] for the same network, checking every
    /// tensor's name, type, shape and finiteness.
    pub fn from_bytes(spec: &Spec, bytes: &[u8]) -> Result<Self, String> {
        let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let meta = header.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some("msnet-adam") {
            return Err("not an msnet Adam state (metadata format is not msnet-adam)".into());
        }
        let number = |key: &str| -> Result<f64, String> {
            meta.get(key)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or_else(|| format!("metadata `{key}` is missing or not a number"))
        };
        let mut m = Vec::new();
        let mut v = Vec::new();
        for c in &spec.convs {
            for (suffix, out) in [("exp_avg", &mut m), ("exp_avg_sq", &mut v)] {
                let name = format!("{}.{suffix}", c.name);
                let t = st
                    .tensor(&name)
                    .map_err(|_| format!("tensor `{name}` is missing"))?;
                if t.dtype() != Dtype::F32 || t.shape() != c.shape() {
                    return Err(format!(
                        "tensor `{name}` is {:?} {:?}, expected F32 {:?}",
                        t.dtype(),
                        t.shape(),
                        c.shape()
                    ));
                }
                let file: Vec<f32> = t
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                if file.iter().any(|x| !x.is_finite()) {
                    return Err(format!("tensor `{name}` holds a non-finite value"));
                }
                out.push(to_kernel_layout(c, &file));
            }
        }
        if st.len() != 2 * spec.convs.len() {
            return Err(format!(
                "{} tensors, the network has {} layers (2 moments each)",
                st.len(),
                spec.convs.len()
            ));
        }
        Ok(Self {
            beta1: number("beta1")? as f32,
            beta2: number("beta2")? as f32,
            epsilon: number("epsilon")? as f32,
            steps: number("steps")? as u64,
            m,
            v,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msnet::Config;

    #[test]
    fn first_step_moves_each_weight_by_the_learning_rate() {
        // At t = 1, m̂ = g and v̂ = g², so every weight with g ≠ 0 moves by lr · sign(g).
        let mut adam = Adam::new([3], 1e-8);
        let mut w = vec![vec![1.0, 1.0, 1.0]];
        adam.step(&mut w, &[vec![0.5, -2.0, 0.0]], 0.1);
        assert!((w[0][0] - 0.9).abs() < 1e-6 && (w[0][1] - 1.1).abs() < 1e-6);
        assert_eq!(w[0][2], 1.0);
    }

    #[test]
    fn state_roundtrips_and_rejects_another_network() {
        let spec = Spec::new(&Config::new(2, 1, 3));
        let lens: Vec<usize> = spec.convs.iter().map(|c| c.len()).collect();
        let mut adam = Adam::new(lens.clone(), 1e-8);
        let mut w: Vec<Vec<f32>> = lens.iter().map(|&n| vec![0.5; n]).collect();
        let g: Vec<Vec<f32>> = lens
            .iter()
            .map(|&n| (0..n).map(|i| (i as f32 * 0.37).sin()).collect())
            .collect();
        adam.step(&mut w, &g, 1e-3);
        adam.step(&mut w, &g, 1e-3);
        let bytes = adam.to_bytes(&spec).unwrap();
        assert_eq!(Adam::from_bytes(&spec, &bytes).unwrap(), adam);
        let other = Spec::new(&Config::new(2, 3, 3));
        let e = Adam::from_bytes(&other, &bytes).unwrap_err();
        assert!(e.contains("head.weight.exp_avg"), "{e}");
        assert!(Adam::from_bytes(&spec, &bytes[..bytes.len() / 2]).is_err());
    }
}
