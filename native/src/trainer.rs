//! A training session on the native engine: the network, its workspace, Adam and the thread
//! pool, driven one mini-batch at a time.

use msnet::config::Loss;
use msnet::sample::Sample;
use msnet::{Spec, Weights};
use msnet_runtime::kernels::conv;
use msnet_runtime::pool::ThreadPool;
use msnet_runtime::with_flushed_denormals;

use crate::adam::Adam;
use crate::loss::{add_cross_entropy, soft_dice};
use crate::network::{Network, Workspace};

/// How the engine runs.
#[derive(Clone, Copy, Debug)]
pub struct NativeOptions {
    /// Threads of the pool, the caller's included.
    pub threads: usize,
    /// Adam's ε (1e-8, PyTorch's default, in the paper's setup).
    pub adam_epsilon: f32,
    /// What a step minimises.
    pub loss: Loss,
}

impl Default for NativeOptions {
    fn default() -> Self {
        Self {
            threads: 1,
            adam_epsilon: 1e-8,
            loss: Loss::Dice,
        }
    }
}

/// Why the engine could not start or take a batch.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    #[error(transparent)]
    Weights(#[from] msnet::weights::WeightsError),
    #[error("cannot start {threads} training threads: {cause}")]
    Threads {
        threads: usize,
        /// In the message, so not a `source()`: printed once.
        cause: std::io::Error,
    },
    /// A sample that does not fit the network; the message names it.
    #[error("{0}")]
    Sample(String),
    #[error("optimiser state: {0}")]
    Optimizer(String),
}

/// Network, workspace, optimiser and threads of one run.
pub struct NativeTrainer {
    net: Network,
    ws: Workspace,
    adam: Adam,
    pool: ThreadPool,
    loss: Loss,
    /// [`crate::probe::largest_phase_input`] of the last step's forward pass.
    largest_phase_input: f32,
}

impl NativeTrainer {
    /// A session starting from `weights` with fresh Adam moments.
    pub fn new(spec: &Spec, weights: &Weights, opts: NativeOptions) -> Result<Self, NativeError> {
        let net = Network::new(spec, weights)?;
        let threads = opts.threads.max(1);
        let pool =
            ThreadPool::new(threads).map_err(|cause| NativeError::Threads { threads, cause })?;
        let adam = Adam::new(net.params.iter().map(Vec::len), opts.adam_epsilon);
        Ok(Self {
            net,
            ws: Workspace::new(),
            adam,
            pool,
            loss: opts.loss,
            largest_phase_input: 0.0,
        })
    }

    pub fn spec(&self) -> &Spec {
        self.net.spec()
    }

    /// Current weights (file layout).
    pub fn weights(&self) -> Weights {
        self.net.weights()
    }

    /// One line for logs and model cards.
    pub fn describe(&self) -> String {
        format!(
            "msnet native engine, {} threads, {} kernels, {}",
            self.pool.threads(),
            conv::path(),
            std::env::consts::ARCH
        )
    }

    /// Adam's state as the bytes of a checkpoint file.
    pub fn optimizer_state(&self) -> Result<Vec<u8>, NativeError> {
        self.adam
            .to_bytes(self.net.spec())
            .map_err(NativeError::Optimizer)
    }

    /// Continues from a checkpoint: its weights and Adam state.
    pub fn restore(&mut self, weights: &Weights, optimizer: &[u8]) -> Result<(), NativeError> {
        let adam = Adam::from_bytes(self.net.spec(), optimizer).map_err(NativeError::Optimizer)?;
        self.net = Network::new(self.net.spec(), weights)?;
        self.adam = adam;
        Ok(())
    }

    /// Checks that every sample fits the network (size, channels, labels, finite pixels),
    /// by the training loop's rule.
    pub fn check(&self, samples: &[&Sample]) -> Result<(), NativeError> {
        msnet_training::check_samples(self.net.spec(), samples.iter().copied())
            .map_err(|e| NativeError::Sample(e.to_string()))
    }

    /// The loss of `batch` and its gradient for every layer (file layout, spec order),
    /// without changing the weights.
    pub fn loss_and_gradients(
        &mut self,
        batch: &[&Sample],
    ) -> Result<(f64, Vec<Vec<f32>>), NativeError> {
        self.check(batch)?;
        let loss = self.forward_backward(batch);
        let grads = self
            .net
            .spec()
            .convs
            .iter()
            .zip(&self.ws.param_grads)
            .map(|(c, g)| msnet::weights::from_kernel_layout(c, g))
            .collect();
        Ok((loss, grads))
    }

    /// One optimisation step at learning rate `lr`: forward, the loss, backward, Adam.
    /// Returns the loss; a non-finite loss or gradient returns it as the error and leaves
    /// weights and moments as they were. The batch must pass [`Self::check`].
    pub fn step(&mut self, batch: &[&Sample], lr: f64) -> Result<f64, f64> {
        let loss = self.forward_backward(batch);
        self.largest_phase_input = crate::probe::largest_phase_input(&self.net, &self.ws);
        let finite = loss.is_finite()
            && self
                .ws
                .param_grads
                .iter()
                .all(|g| g.iter().all(|v| v.is_finite()));
        if !finite {
            return Err(if loss.is_finite() { f64::NAN } else { loss });
        }
        self.adam
            .step(&mut self.net.params, &self.ws.param_grads, lr);
        Ok(loss)
    }

    /// The largest magnitude of a phase softmax's input in the last [`Self::step`]'s forward
    /// pass (0 before the first).
    pub fn largest_phase_input(&self) -> f32 {
        self.largest_phase_input
    }

    fn forward_backward(&mut self, batch: &[&Sample]) -> f64 {
        let Self {
            net,
            ws,
            pool,
            loss: kind,
            ..
        } = self;
        with_flushed_denormals(|| {
            let images: Vec<&[f32]> = batch.iter().map(|s| s.image.as_slice()).collect();
            let labels: Vec<&[u8]> = batch.iter().map(|s| s.labels.as_slice()).collect();
            net.forward(ws, &images, pool);
            let out = net.graph.output;
            let mut dprobs = ws.take_buffer(ws.values[out].len());
            let classes = net.spec().config.classes;
            let mut loss = soft_dice(&ws.values[out], &labels, classes, &mut dprobs);
            if *kind == Loss::DiceCe {
                loss += add_cross_entropy(&ws.values[out], &labels, classes, &mut dprobs);
            }
            net.backward(ws, dprobs, pool);
            loss
        })
    }

    /// The network and the values of its last forward pass, for [`crate::probe`].
    pub(crate) fn network_and_workspace(&self) -> (&Network, &Workspace) {
        (&self.net, &self.ws)
    }

    /// Class probabilities per sample (`[classes][voxels]`). Samples must pass
    /// [`Self::check`].
    pub fn probabilities(&mut self, samples: &[&Sample]) -> Vec<Vec<f32>> {
        let Self { net, ws, pool, .. } = self;
        let images: Vec<&[f32]> = samples.iter().map(|s| s.image.as_slice()).collect();
        let probs = with_flushed_denormals(|| net.forward(ws, &images, pool).to_vec());
        let per = net.output_shape().len();
        probs.chunks_exact(per).map(<[f32]>::to_vec).collect()
    }

    /// The predicted class of every voxel, per sample.
    pub fn predict(&mut self, samples: &[&Sample]) -> Vec<Vec<u8>> {
        let classes = self.net.spec().config.classes;
        self.probabilities(samples)
            .iter()
            .map(|p| msnet_labels::argmax(p, classes))
            .collect()
    }
}
