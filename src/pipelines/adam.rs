//! Adam with decoupled weight decay (AdamW), with state that can be saved and
//! restored so that a resumed training run continues exactly.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

/// Hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        Self { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }
}

/// The optimiser over a named set of variables.
pub struct Adam {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: usize,
    /// Hyper-parameters (the learning rate may be changed between steps).
    pub config: AdamConfig,
}

impl Adam {
    /// Starts with zero moments for every variable.
    pub fn new(mut vars: Vec<(String, Var)>, config: AdamConfig) -> Result<Self> {
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let m = vars.iter().map(|(_, v)| v.zeros_like()).collect::<Result<Vec<_>>>()?;
        let v = vars.iter().map(|(_, v)| v.zeros_like()).collect::<Result<Vec<_>>>()?;
        Ok(Self { vars, m, v, step: 0, config })
    }

    /// Number of updates made so far.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Minimises `loss`: one backward pass and one update.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step_with(&grads)
    }

    /// One update from precomputed gradients (variables without one are left alone).
    pub fn step_with(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let bias1 = 1.0 - c.beta1.powi(self.step as i32);
        let bias2 = 1.0 - c.beta2.powi(self.step as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&m / bias1)?;
            let v_hat = (&v / bias2)?;
            let update = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let decayed = (var.as_tensor().detach() * (1.0 - c.lr * c.weight_decay))?;
            var.set(&(decayed - (update * c.lr)?)?)?;
            self.m[i] = m.detach();
            self.v[i] = v.detach();
        }
        Ok(())
    }

    /// The moments as named tensors (`m.NAME`, `v.NAME`), for checkpoints.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            out.insert(format!("m.{name}"), self.m[i].clone());
            out.insert(format!("v.{name}"), self.v[i].clone());
        }
        out
    }

    /// Restores moments saved by [`Adam::state`] and the step count.
    pub fn restore(&mut self, state: &HashMap<String, Tensor>, step: usize) -> Result<()> {
        for (i, (name, var)) in self.vars.iter().enumerate() {
            for (prefix, slot) in [("m", &mut self.m[i]), ("v", &mut self.v[i])] {
                let key = format!("{prefix}.{name}");
                let t =
                    state.get(&key).ok_or_else(|| candle_core::Error::Msg(format!("optimizer state lacks {key}")))?;
                if t.dims() != var.dims() {
                    return Err(candle_core::Error::Msg(format!("optimizer state {key} has shape {:?}", t.dims())));
                }
                *slot = t.clone();
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn first_step_moves_each_weight_by_lr_against_the_gradient() -> Result<()> {
        // With bias correction, Adam's first update is lr·sign(g) (up to eps).
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig { lr: 0.1, ..Default::default() })?;
        let loss = (w.as_tensor().sqr()?.sum_all()? * 0.5)?; // gradient = w
        opt.backward_step(&loss)?;
        let got = w.as_tensor().to_vec1::<f32>()?;
        assert!((got[0] - 0.9).abs() < 1e-6 && (got[1] + 1.9).abs() < 1e-6, "{got:?}");
        Ok(())
    }

    #[test]
    fn moments_do_not_keep_the_graph_alive() -> Result<()> {
        // Regression: moments built from undetached gradients chained every
        // step's autograd graph together and training ran out of memory.
        let w = Var::new(&[1.0f32, 2.0], &Device::Cpu)?;
        let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::default())?;
        for _ in 0..3 {
            let loss = w.as_tensor().sqr()?.sum_all()?;
            opt.backward_step(&loss)?;
        }
        for t in opt.state().values() {
            assert!(!t.track_op(), "optimizer state tracks an op");
        }
        Ok(())
    }

    #[test]
    fn minimises_a_quadratic() -> Result<()> {
        let w = Var::new(&[5.0f32, -3.0], &Device::Cpu)?;
        let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig { lr: 0.1, ..Default::default() })?;
        for _ in 0..500 {
            let loss = (w.as_tensor() - 1.0)?.sqr()?.sum_all()?;
            opt.backward_step(&loss)?;
        }
        for v in w.as_tensor().to_vec1::<f32>()? {
            assert!((v - 1.0).abs() < 1e-2, "{v}");
        }
        Ok(())
    }
}
