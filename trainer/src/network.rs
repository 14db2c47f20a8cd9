//! MSNet as a burn module: one parameter per layer of the spec, the forward pass from
//! [`msnet::graph::forward`], and conversion to and from [`msnet::Weights`].

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use msnet::{Spec, Weights};

use crate::lowering::BurnLowering;

/// The learnable tensors of MSNet, in [`Spec::convs`] order. 2D kernels are stored with a unit
/// depth axis (`[o, i, 1, 3, 3]`) so one type serves 2D and 3D. Parameter ids are the layer
/// indices, so optimizer state saved in a checkpoint matches the parameters after a resume.
#[derive(Module, Debug)]
pub struct MsNet {
    pub convs: Vec<Param<Tensor<5>>>,
}

/// Burn's rank-5 shape for a layer's weight.
fn burn_shape(shape: &[usize]) -> [usize; 5] {
    match *shape {
        [a, b, k1, k2] => [a, b, 1, k1, k2],
        [a, b, k0, k1, k2] => [a, b, k0, k1, k2],
        _ => unreachable!("MSNet kernels are 2D or 3D"),
    }
}

impl MsNet {
    /// Builds the module from weights that have been checked against `spec`.
    pub fn from_weights(spec: &Spec, weights: &Weights, device: &Device) -> Self {
        let convs = spec
            .convs
            .iter()
            .zip(&weights.tensors)
            .map(|(c, t)| {
                let data = TensorData::new(t.clone(), burn_shape(&c.shape()));
                let tensor = Tensor::<5>::from_data(data, device);
                // Gradients only exist on an autodiff device; inference devices take plain
                // tensors.
                let tensor = if tensor.is_autodiff() {
                    tensor.require_grad()
                } else {
                    tensor
                };
                Param::initialized((c.index as u64).into(), tensor)
            })
            .collect();
        Self { convs }
    }

    /// Copies the weights out, in the weight file's layout.
    pub fn to_weights(&self) -> Weights {
        let tensors = self
            .convs
            .iter()
            .map(|p| {
                p.val()
                    .into_data()
                    .try_into_vec::<f32>()
                    .unwrap_or_else(|e| unreachable!("MSNet weights are f32: {e:?}"))
            })
            .collect();
        Weights { tensors }
    }

    /// Class probabilities `[B, classes, D, H, W]` for images `[B, in, D, H, W]` in `[0, 1]`.
    pub fn forward(&self, spec: &Spec, image: Tensor<5>) -> Tensor<5> {
        let device = image.device();
        let mut lowering = BurnLowering {
            weights: &self.convs,
            dims: spec.config.dims,
            device: &device,
        };
        msnet::graph::forward(&mut lowering, spec, &image)
    }
}
