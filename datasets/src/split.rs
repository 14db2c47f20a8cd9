//! Reproducible train / test splits.
//!
//! Every procedure starts from the **sorted** names (byte order) and one generator,
//! `ChaCha8Rng::seed_from_u64(seed)`, used with `rand`'s `SliceRandom::shuffle`; so a split is a
//! pure function of (names, seed, sizes) and is the same on every machine.
//!
//! - [`seeded_split`] (wbc, folder): shuffle the sorted names; the first `n_test` are the test
//!   set; the training set is the first `train_size` of the remaining names in shuffled order.
//!   The test set therefore depends only on the seed, and a larger `train_size` extends a
//!   smaller one (S = 10 ⊂ S = 30 ⊂ S = 60 for one seed).
//! - [`fixed_test_split`] (drishti): the test set is given (the official one); the training set
//!   is the first `train_size` of the shuffled sorted training pool.
//! - [`patient_split`] (acdc): shuffle the sorted patients; the first `n_test_patients` patients
//!   give the test set (all their volumes); then, with the same generator, each patient's sorted
//!   volumes are shuffled in turn (in shuffled patient order, test patients included, so the
//!   draw does not depend on which patients are tested). The training candidates are the
//!   first volume of every remaining patient (in shuffled patient order), then their second
//!   volumes, and so on; the training set is the first `train_size` candidates, so no patient
//!   gives two volumes before every patient has given one.
//!
//! With explicit `test_names`, those are the test set (each must exist; order kept) and the
//! training set is drawn as above from what is left (for acdc: from the other patients).

use std::collections::{BTreeMap, HashSet};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::{DataError, Split};

/// What the caller wants from a split.
#[derive(Clone, Copy, Debug)]
pub struct SplitRequest<'a> {
    /// Number of training samples.
    pub train_size: usize,
    /// Seed of the shuffles.
    pub seed: u64,
    /// Use exactly these test samples instead of drawing them.
    pub test_names: Option<&'a [String]>,
    /// Whether `train_size = 0` is acceptable (evaluation only).
    pub allow_empty_train: bool,
}

/// The sorted names, shuffled by `rng`.
pub fn shuffled(names: &[String], rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut out = names.to_vec();
    out.sort();
    out.dedup();
    out.shuffle(rng);
    out
}

/// The wbc / folder split (see the module docs).
pub fn seeded_split(
    names: &[String],
    n_test: usize,
    req: &SplitRequest,
) -> Result<Split, DataError> {
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let order = shuffled(names, &mut rng);
    let test = match req.test_names {
        Some(given) => check_test_names(given, &order)?,
        None => {
            check_test_count(n_test, order.len(), "images")?;
            order[..n_test].to_vec()
        }
    };
    let train = take_train(&order, &test, req, "images")?;
    Ok(Split { train, test })
}

/// The drishti split: a fixed test pool, training drawn from the train pool (see module docs).
pub fn fixed_test_split(
    train_pool: &[String],
    test_pool: &[String],
    req: &SplitRequest,
) -> Result<Split, DataError> {
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let order = shuffled(train_pool, &mut rng);
    let test = match req.test_names {
        Some(given) => {
            let all: Vec<String> = test_pool.iter().chain(train_pool).cloned().collect();
            check_test_names(given, &all)?
        }
        None => {
            let mut test = test_pool.to_vec();
            test.sort();
            test
        }
    };
    let train = take_train(&order, &test, req, "training images")?;
    Ok(Split { train, test })
}

/// The patient of a volume name: the part before `_frame` (`patient001_frame01` → `patient001`).
pub fn patient_of(name: &str) -> &str {
    name.split_once("_frame").map_or(name, |(p, _)| p)
}

/// The acdc split by patient (see the module docs).
pub fn patient_split(
    volumes: &[String],
    n_test_patients: usize,
    req: &SplitRequest,
) -> Result<Split, DataError> {
    let mut by_patient: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for v in volumes {
        by_patient.entry(patient_of(v)).or_default().push(v.clone());
    }
    let patients: Vec<String> = by_patient.keys().map(|p| p.to_string()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(req.seed);
    let order = shuffled(&patients, &mut rng);
    // Shuffle every patient's volumes now, in a fixed order, so the training draw depends only
    // on the seed and not on which patients end up in the test set.
    let frames: Vec<Vec<String>> = order
        .iter()
        .map(|p| {
            let mut f = by_patient.get(p.as_str()).cloned().unwrap_or_default();
            f.sort();
            f.shuffle(&mut rng);
            f
        })
        .collect();

    let test = match req.test_names {
        Some(given) => check_test_names(given, volumes)?,
        None => {
            check_test_count(n_test_patients, order.len(), "patients")?;
            let mut test: Vec<String> = frames[..n_test_patients].concat();
            test.sort();
            test
        }
    };
    let test_patients: HashSet<&str> = test.iter().map(|v| patient_of(v)).collect();
    let remaining: Vec<&Vec<String>> = order
        .iter()
        .zip(&frames)
        .filter(|(p, _)| !test_patients.contains(p.as_str()))
        .map(|(_, f)| f)
        .collect();
    let rounds = remaining.iter().map(|f| f.len()).max().unwrap_or(0);
    let candidates: Vec<String> = (0..rounds)
        .flat_map(|r| remaining.iter().filter_map(move |f| f.get(r).cloned()))
        .collect();
    let train = take_train(&candidates, &[], req, "volumes of the non-test patients")?;
    Ok(Split { train, test })
}

/// Errors unless a drawn test set of `n_test` leaves at least one of `total` for training.
fn check_test_count(n_test: usize, total: usize, what: &str) -> Result<(), DataError> {
    let reason = if n_test == 0 {
        format!("the test set must hold at least 1 of the {total} {what}")
    } else if n_test >= total {
        format!("a test set of {n_test} leaves nothing to train on: the dataset has {total} {what}")
    } else {
        return Ok(());
    };
    Err(DataError::BadSplit { reason })
}

/// Checks that every given test name exists (and none repeats); keeps the given order.
fn check_test_names(given: &[String], available: &[String]) -> Result<Vec<String>, DataError> {
    let known: HashSet<&str> = available.iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    for name in given {
        if !known.contains(name.as_str()) {
            return Err(DataError::BadSplit {
                reason: format!("test sample '{name}' is not in the dataset"),
            });
        }
        if !seen.insert(name.as_str()) {
            return Err(DataError::BadSplit {
                reason: format!("test sample '{name}' is listed twice"),
            });
        }
    }
    if given.is_empty() {
        return Err(DataError::BadSplit {
            reason: "the list of test samples is empty".into(),
        });
    }
    Ok(given.to_vec())
}

/// The first `req.train_size` names of `order` that are not in `test`.
fn take_train(
    order: &[String],
    test: &[String],
    req: &SplitRequest,
    what: &str,
) -> Result<Vec<String>, DataError> {
    let test: HashSet<&str> = test.iter().map(String::as_str).collect();
    let pool: Vec<&String> = order
        .iter()
        .filter(|n| !test.contains(n.as_str()))
        .collect();
    if req.train_size == 0 && !req.allow_empty_train {
        return Err(DataError::BadSplit {
            reason: format!(
                "train_size must be at least 1 ({} {what} are available)",
                pool.len()
            ),
        });
    }
    if req.train_size > pool.len() {
        return Err(DataError::BadSplit {
            reason: format!(
                "train_size {} is larger than the {} {what} left after the test set",
                req.train_size,
                pool.len()
            ),
        });
    }
    Ok(pool[..req.train_size]
        .iter()
        .map(|s| s.to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("{i:03}")).collect()
    }

    fn req(train_size: usize, seed: u64) -> SplitRequest<'static> {
        SplitRequest {
            train_size,
            seed,
            test_names: None,
            allow_empty_train: false,
        }
    }

    #[test]
    fn seeded_split_test_set_depends_only_on_seed() {
        let all = names(300);
        let a = seeded_split(&all, 20, &req(10, 7)).unwrap();
        let b = seeded_split(&all, 20, &req(60, 7)).unwrap();
        assert_eq!(a.test, b.test);
        assert_eq!(
            a.train[..],
            b.train[..10],
            "a larger S extends a smaller one"
        );
        assert_eq!((a.test.len(), b.train.len()), (20, 60));
        assert!(a.train.iter().all(|n| !a.test.contains(n)));
        // Input order does not matter, the seed does.
        let mut rev = all.clone();
        rev.reverse();
        assert_eq!(seeded_split(&rev, 20, &req(10, 7)).unwrap(), a);
        assert_ne!(seeded_split(&all, 20, &req(10, 8)).unwrap().test, a.test);
    }

    #[test]
    fn train_size_bounds_are_explained() {
        let all = names(25);
        let e = seeded_split(&all, 20, &req(6, 0)).unwrap_err().to_string();
        assert!(e.contains("train_size 6") && e.contains("5 images"), "{e}");
        let e = seeded_split(&all, 20, &req(0, 0)).unwrap_err().to_string();
        assert!(e.contains("at least 1") && e.contains("5 images"), "{e}");
        let e = seeded_split(&names(20), 20, &req(1, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("20 images"), "{e}");
        let e = seeded_split(&all, 0, &req(1, 0)).unwrap_err().to_string();
        assert!(e.contains("at least 1 of the 25 images"), "{e}");
    }

    #[test]
    fn explicit_test_names_are_used_verbatim() {
        let all = names(30);
        let given = vec!["003".to_string(), "001".to_string()];
        let r = SplitRequest {
            test_names: Some(&given),
            allow_empty_train: true,
            ..req(0, 1)
        };
        let s = seeded_split(&all, 20, &r).unwrap();
        assert_eq!((s.test.clone(), s.train.len()), (given.clone(), 0));
        let missing = vec!["999".to_string()];
        let r = SplitRequest {
            test_names: Some(&missing),
            ..r
        };
        let e = seeded_split(&all, 20, &r).unwrap_err().to_string();
        assert!(e.contains("'999'"), "{e}");
        // Replaying a seed's own test set reproduces its training set.
        let orig = seeded_split(&all, 5, &req(4, 3)).unwrap();
        let r = SplitRequest {
            test_names: Some(&orig.test),
            ..req(4, 3)
        };
        assert_eq!(seeded_split(&all, 5, &r).unwrap(), orig);
    }

    #[test]
    fn fixed_test_split_uses_the_pool() {
        let train = names(50);
        let test: Vec<String> = (51..=101).map(|i| format!("{i:03}")).collect();
        let s = fixed_test_split(&train, &test, &req(20, 0)).unwrap();
        assert_eq!(s.test.len(), 51);
        assert_eq!(s.train.len(), 20);
        assert!(s.train.iter().all(|n| train.contains(n)));
        let e = fixed_test_split(&train, &test, &req(51, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("50 training images"), "{e}");
    }

    #[test]
    fn patient_split_keeps_patients_together() {
        let vols: Vec<String> = (1..=30)
            .flat_map(|p| [1, 2].map(|f| format!("patient{p:03}_frame{f:02}")))
            .collect();
        let s = patient_split(&vols, 10, &req(25, 4)).unwrap();
        assert_eq!(s.test.len(), 20);
        let test_p: HashSet<&str> = s.test.iter().map(|v| patient_of(v)).collect();
        assert_eq!(test_p.len(), 10);
        assert!(s.train.iter().all(|v| !test_p.contains(patient_of(v))));
        // One frame per patient first: the first 20 training volumes are 20 distinct patients.
        let first: HashSet<&str> = s.train[..20].iter().map(|v| patient_of(v)).collect();
        assert_eq!(first.len(), 20);
        let small = patient_split(&vols, 10, &req(2, 4)).unwrap();
        assert_eq!(
            (small.test.clone(), &small.train[..]),
            (s.test.clone(), &s.train[..2])
        );
        let e = patient_split(&vols, 10, &req(41, 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("40 volumes"), "{e}");
    }
}
