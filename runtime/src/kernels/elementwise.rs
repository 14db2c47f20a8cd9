//! Elementwise kernels of the FEM's arithmetic. Written as plain loops over equal-length
//! slices so the compiler vectorises them on every target; the operands never alias (the
//! plan validator guarantees it).

/// `out = a + scale·b` (add, subtract, and the FEM's scaled updates `u + dt·drive`).
pub fn add_scaled(a: &[f32], b: &[f32], scale: f32, out: &mut [f32]) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a + scale * b;
    }
}

/// `out = a·b`.
pub fn mul(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, &a), &b) in out.iter_mut().zip(a).zip(b) {
        *o = a * b;
    }
}

/// `out = scale·x + shift`.
pub fn affine(x: &[f32], scale: f32, shift: f32, out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = scale * x + shift;
    }
}

/// `out = scale·x²`.
pub fn scaled_square(x: &[f32], scale: f32, out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = scale * (x * x);
    }
}

/// `out = max(x, 0)`.
pub fn relu(x: &[f32], out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(x) {
        *o = x.max(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_match_their_formulas() {
        let a = [1.0, -2.0, 3.5, 0.0];
        let b = [0.5, 4.0, -1.0, 2.0];
        let mut out = [0.0; 4];
        add_scaled(&a, &b, -2.0, &mut out);
        assert_eq!(out, [0.0, -10.0, 5.5, -4.0]);
        mul(&a, &b, &mut out);
        assert_eq!(out, [0.5, -8.0, -3.5, 0.0]);
        affine(&a, -2.0, 1.0, &mut out);
        assert_eq!(out, [-1.0, 5.0, -6.0, 1.0]);
        scaled_square(&a, -0.5, &mut out);
        assert_eq!(out, [-0.5, -2.0, -6.125, -0.0]);
        relu(&a, &mut out);
        assert_eq!(out, [1.0, 0.0, 3.5, 0.0]);
    }
}
