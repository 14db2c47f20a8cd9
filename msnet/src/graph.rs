//! The MSNet forward pass, written once as a program over abstract tensor operations.
//!
//! Every engine lowers this one program: the trainer implements [`Lowering`] with burn tensors,
//! the exporter with ONNX nodes, the runtime plan compiler with plan ops. Nothing of the
//! V-cycle is written anywhere else, so the engines cannot drift apart.
//!
//! The program follows `MSNET.md` (Algorithm 2, FAS V-cycle, one relaxation per grid) and
//! computes each value once:
//! - `L(u')` of the `v` update is reused by the FAS residual `F - A(u', v')`;
//! - on a coarse grid, `F = R(r) + A(u0, v0)`, so the first FEM's `F - A(u0, v0)` is `R(r)`:
//!   the duplicate `A(u0, v0)` is not evaluated again (results change only by float rounding).
//!
//! Deduplicated, a 2D forward pass runs 86 convolutions instead of 110 ([`crate::cost`]
//! counts them).

use crate::spec::{ConvSpec, FemLayers, Spec, Sweep};

/// Tensor operations the MSNet program needs. Tensors are `[batch, channels, D, H, W]`-shaped
/// in spirit (D = 1 in 2D); a lowering chooses its own representation.
pub trait Lowering {
    /// A tensor handle (a burn tensor, an ONNX value name, a plan slot).
    type Value: Clone;

    /// Per-channel `(x - mean[c]) / std[c]`.
    fn normalize(&mut self, x: &Self::Value, mean: &[f32], std: &[f32]) -> Self::Value;
    /// Bias-free convolution (or transposed convolution) with padding 1 and the layer's stride.
    fn conv(&mut self, layer: &ConvSpec, x: &Self::Value) -> Self::Value;
    fn relu(&mut self, x: &Self::Value) -> Self::Value;
    fn add(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value;
    fn sub(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value;
    fn mul(&mut self, a: &Self::Value, b: &Self::Value) -> Self::Value;
    /// `scale * x + shift`, elementwise.
    fn affine(&mut self, x: &Self::Value, scale: f32, shift: f32) -> Self::Value;
    /// `x * x`, elementwise.
    fn square(&mut self, x: &Self::Value) -> Self::Value;
    /// Softmax over the `phases` groups: channel `c = n*I + i`, softmax over `n` for each `i`.
    fn phase_softmax(&mut self, x: &Self::Value, phases: usize) -> Self::Value;
    /// 2×2 (2×2×2 in 3D) average pooling, stride 2: restriction of `v` that keeps it on the
    /// simplex.
    fn avg_pool(&mut self, x: &Self::Value) -> Self::Value;
    /// ×2 linear prolongation on every spatial axis, half-pixel centres, edge-clamped:
    /// `out[2i] = 0.75 x[i] + 0.25 x[i-1]`, `out[2i+1] = 0.75 x[i] + 0.25 x[i+1]`.
    fn prolong(&mut self, x: &Self::Value) -> Self::Value;
    /// Softmax over the channel axis (the classes).
    fn class_softmax(&mut self, x: &Self::Value) -> Self::Value;
}

/// The variables of one grid kept from the down sweep for the up sweep.
struct Level<V> {
    /// Right-hand side `F_h`.
    rhs: V,
    /// Restricted image features `f_h`.
    f: V,
    /// Initial `u_h0` (the correction is prolonged relative to it).
    u0: V,
    /// `u_h` after the down FEM.
    u: V,
    /// `v_h` after the down FEM.
    v: V,
}

/// The four parts of one FEM plus the config scalars, bound to a lowering.
struct Fem<'a> {
    layers: FemLayers<'a>,
    lambda: f32,
    alpha: f32,
    eps: f32,
    dt: f32,
    phases: usize,
}

impl Fem<'_> {
    /// `L(u) = L2(relu(L1(u)))`.
    fn l<B: Lowering>(&self, b: &mut B, u: &B::Value) -> B::Value {
        let h = b.conv(self.layers.l1, u);
        let h = b.relu(&h);
        b.conv(self.layers.l2, &h)
    }

    /// `A(u, v) = v*u + lambda * L*(v * L(u))`, given `lu = L(u)`.
    fn a<B: Lowering>(&self, b: &mut B, u: &B::Value, v: &B::Value, lu: &B::Value) -> B::Value {
        let vlu = b.mul(v, lu);
        let h = b.conv(self.layers.t1, &vlu);
        let h = b.relu(&h);
        let lt = b.conv(self.layers.t2, &h);
        let vu = b.mul(v, u);
        let lt = b.affine(&lt, self.lambda, 0.0);
        b.add(&vu, &lt)
    }

    /// `u' = u + dt * drive`, where `drive = F - A(u, v)`.
    fn relax_u<B: Lowering>(&self, b: &mut B, u: &B::Value, drive: &B::Value) -> B::Value {
        let step = b.affine(drive, self.dt, 0.0);
        b.add(u, &step)
    }

    /// Eq. (14): `softmax_g((-0.5 (f-u)^2 - 0.5 lambda L(u)^2 - alpha K(1-2v)) / eps)`,
    /// given `lu = L(u)`.
    fn update_v<B: Lowering>(
        &self,
        b: &mut B,
        f: &B::Value,
        u: &B::Value,
        lu: &B::Value,
        v: &B::Value,
    ) -> B::Value {
        let fit = b.sub(f, u);
        let fit = b.square(&fit);
        let fit = b.affine(&fit, -0.5 / self.eps, 0.0);
        let reg = b.square(lu);
        let reg = b.affine(&reg, -0.5 * self.lambda / self.eps, 0.0);
        let one_minus_2v = b.affine(v, -2.0, 1.0);
        let len = b.conv(self.layers.k, &one_minus_2v);
        let len = b.affine(&len, -self.alpha / self.eps, 0.0);
        let z = b.add(&fit, &reg);
        let z = b.add(&z, &len);
        b.phase_softmax(&z, self.phases)
    }
}

/// The MSNet forward pass: `image` (`[B, in, D, H, W]`, intensities in `[0, 1]`) to class
/// probabilities (`[B, classes, D, H, W]`).
pub fn forward<B: Lowering>(b: &mut B, spec: &Spec, image: &B::Value) -> B::Value {
    let cfg = &spec.config;
    let fem = |sweep, h| Fem {
        layers: spec.fem(sweep, h),
        lambda: cfg.lambda,
        alpha: cfg.alpha,
        eps: cfg.eps,
        dt: cfg.dt,
        phases: cfg.phases,
    };
    let grids = cfg.grids;

    // Initialisation on the finest grid: u = f, v = softmax_g(f), F = v * f.
    let x = b.normalize(image, &cfg.normalization.mean, &cfg.normalization.std);
    let mut f = b.conv(spec.head(), &x);
    let mut u0 = f.clone();
    let mut v0 = b.phase_softmax(&f, cfg.phases);
    let mut rhs = b.mul(&v0, &f);
    // drive = F - A(u0, v0): explicit on the finest grid, R(r) on coarser ones.
    let first = fem(Sweep::Down, 1);
    let lu0 = first.l(b, &u0);
    let a0 = first.a(b, &u0, &v0, &lu0);
    let mut drive = b.sub(&rhs, &a0);

    let mut levels: Vec<Level<B::Value>> = Vec::with_capacity(grids);
    for h in 1..=grids {
        let down = fem(Sweep::Down, h);
        let u = down.relax_u(b, &u0, &drive);
        let lu = down.l(b, &u);
        let v = down.update_v(b, &f, &u, &lu, &v0);
        if h < grids {
            // FAS: restrict the residual of the level-h operator and rebuild the coarse
            // right-hand side around the restricted iterate.
            let a = down.a(b, &u, &v, &lu);
            let residual = b.sub(&rhs, &a);
            let u0_next = b.conv(spec.restrict_u(), &u);
            let f_next = b.conv(spec.restrict_u(), &f);
            let v0_next = b.avg_pool(&v);
            let r_next = b.conv(spec.restrict_r(), &residual);
            let coarse = fem(Sweep::Down, h + 1);
            let lu0_next = coarse.l(b, &u0_next);
            let a0_next = coarse.a(b, &u0_next, &v0_next, &lu0_next);
            let rhs_next = b.add(&r_next, &a0_next);
            levels.push(Level {
                rhs: std::mem::replace(&mut rhs, rhs_next),
                f: std::mem::replace(&mut f, f_next),
                u0: std::mem::replace(&mut u0, u0_next),
                u,
                v,
            });
            v0 = v0_next;
            drive = r_next;
        } else {
            levels.push(Level { rhs, f, u0, u, v });
            break;
        }
    }

    // Up sweep: prolong the coarse correction and v, then one FEM per grid.
    let coarsest = levels.pop().unwrap_or_else(|| unreachable!("grids >= 1"));
    let (mut u_coarse, mut u0_coarse, mut v) = (coarsest.u, coarsest.u0, coarsest.v);
    for h in (1..grids).rev() {
        let level = levels
            .pop()
            .unwrap_or_else(|| unreachable!("one level per grid"));
        let up = fem(Sweep::Up, h);
        let correction = b.sub(&u_coarse, &u0_coarse);
        let correction = b.prolong(&correction);
        let u_in = b.add(&level.u, &correction);
        let v_in = b.prolong(&v);
        let lu_in = up.l(b, &u_in);
        let a_in = up.a(b, &u_in, &v_in, &lu_in);
        let drive = b.sub(&level.rhs, &a_in);
        let u = up.relax_u(b, &u_in, &drive);
        let lu = up.l(b, &u);
        v = up.update_v(b, &level.f, &u, &lu, &v_in);
        u_coarse = u;
        u0_coarse = level.u0;
    }

    let (o1, o2) = spec.out();
    let h = b.conv(o1, &v);
    let h = b.relu(&h);
    let logits = b.conv(o2, &h);
    b.class_softmax(&logits)
}
