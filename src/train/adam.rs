//! Adam with decoupled weight decay (AdamW), with state that can be saved and
//! restored so that a resumed training run continues exactly.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use rayon::prelude::*;

use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var};

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
    /// An exponential moving average of each variable, when enabled: (decay, averages).
    average: Option<(f64, Vec<Tensor>)>,
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
        Ok(Self { vars, m, v, average: None, step: 0, config })
    }

    /// Keeps an exponential moving average of the variables from now on
    /// (`avg ← decay·avg + (1 − decay)·var` after every step), starting from
    /// their current values. Diffusion models sample better from it.
    pub fn keep_average(&mut self, decay: f64) -> Result<()> {
        let averages = self.vars.iter().map(|(_, v)| v.as_tensor().copy()).collect::<Result<Vec<_>>>()?;
        self.average = Some((decay, averages));
        Ok(())
    }

    /// The averaged values by variable name, if an average is kept.
    pub fn averages(&self) -> Option<Vec<(&str, &Tensor)>> {
        let (_, averages) = self.average.as_ref()?;
        Some(self.vars.iter().zip(averages).map(|((name, _), a)| (name.as_str(), a)).collect())
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
            let p = var.as_tensor();
            if p.device().is_cpu() && p.dtype() == DType::F32 {
                // In place, one pass per tensor: no temporaries for ~1 M parameters.
                let g = g.contiguous()?;
                self.m[i].inplace_op2(&g, &MomentUpdate { decay: c.beta1 as f32, square: false })?;
                self.v[i].inplace_op2(&g, &MomentUpdate { decay: c.beta2 as f32, square: true })?;
                let update = ParamUpdate {
                    lr: c.lr as f32,
                    eps: c.eps as f32,
                    bias1: bias1 as f32,
                    bias2: bias2 as f32,
                    shrink: (1.0 - c.lr * c.weight_decay) as f32,
                };
                p.inplace_op3(&self.m[i], &self.v[i], &update)?;
                continue;
            }
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
        if let Some((decay, averages)) = &mut self.average {
            for ((_, var), average) in self.vars.iter().zip(averages.iter_mut()) {
                let p = var.as_tensor();
                if p.device().is_cpu() && p.dtype() == DType::F32 {
                    // The first-moment update with the variable in the gradient's place.
                    average.inplace_op2(p, &MomentUpdate { decay: *decay as f32, square: false })?;
                } else {
                    *average = ((&*average * *decay)? + (p.detach() * (1.0 - *decay))?)?;
                }
            }
        }
        Ok(())
    }

    /// The moments (and averages) as named tensors (`m.NAME`, `v.NAME`, `avg.NAME`), for checkpoints.
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            // Copies: the moments are updated in place by later steps.
            out.insert(format!("m.{name}"), self.m[i].copy()?);
            out.insert(format!("v.{name}"), self.v[i].copy()?);
            if let Some((_, averages)) = &self.average {
                out.insert(format!("avg.{name}"), averages[i].copy()?);
            }
        }
        Ok(out)
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
                *slot = t.copy()?; // not shared with the caller's map: updated in place
            }
            // An average saved before averaging was switched on starts from the variable.
            if let Some((_, averages)) = &mut self.average {
                averages[i] = match state.get(&format!("avg.{name}")) {
                    Some(t) if t.dims() == var.dims() => t.copy()?,
                    _ => var.as_tensor().copy()?,
                };
            }
        }
        self.step = step;
        Ok(())
    }
}

/// Elements per parallel task of the in-place updates.
const PAR_CHUNK: usize = 1 << 14;

/// `m ← decay·m + (1 − decay)·g` (or `g²` for the second moment), in place.
struct MomentUpdate {
    decay: f32,
    square: bool,
}

impl InplaceOp2 for MomentUpdate {
    fn name(&self) -> &'static str {
        "adam-moment"
    }

    fn cpu_fwd(&self, m: &mut CpuStorage, ml: &Layout, g: &CpuStorage, gl: &Layout) -> Result<()> {
        let (CpuStorage::F32(m), CpuStorage::F32(g)) = (m, g) else { candle_core::bail!("adam: f32 only") };
        let (m, g) = (contiguous_mut(m, ml)?, contiguous(g, gl)?);
        let (keep, take) = (self.decay, 1.0 - self.decay);
        m.par_chunks_mut(PAR_CHUNK).zip(g.par_chunks(PAR_CHUNK)).for_each(|(m, g)| {
            for (m, &g) in m.iter_mut().zip(g) {
                *m = keep * *m + take * if self.square { g * g } else { g };
            }
        });
        Ok(())
    }
}

/// `p ← shrink·p − lr·m̂ / (√v̂ + eps)` with bias-corrected moments, in place.
struct ParamUpdate {
    lr: f32,
    eps: f32,
    bias1: f32,
    bias2: f32,
    /// 1 − lr·weight_decay (decoupled decay).
    shrink: f32,
}

impl InplaceOp3 for ParamUpdate {
    fn name(&self) -> &'static str {
        "adam-param"
    }

    fn cpu_fwd(
        &self,
        p: &mut CpuStorage,
        pl: &Layout,
        m: &CpuStorage,
        ml: &Layout,
        v: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let (CpuStorage::F32(p), CpuStorage::F32(m), CpuStorage::F32(v)) = (p, m, v) else {
            candle_core::bail!("adam: f32 only")
        };
        let (p, m, v) = (contiguous_mut(p, pl)?, contiguous(m, ml)?, contiguous(v, vl)?);
        let chunks = p.par_chunks_mut(PAR_CHUNK).zip(m.par_chunks(PAR_CHUNK).zip(v.par_chunks(PAR_CHUNK)));
        chunks.for_each(|(p, (m, v))| {
            for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                *p = self.shrink * *p - self.lr * (m / self.bias1) / ((v / self.bias2).sqrt() + self.eps);
            }
        });
        Ok(())
    }
}

fn contiguous<'a>(data: &'a [f32], layout: &Layout) -> Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("adam: tensors must be contiguous"),
    }
}

fn contiguous_mut<'a>(data: &'a mut [f32], layout: &Layout) -> Result<&'a mut [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => candle_core::bail!("adam: tensors must be contiguous"),
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
        for t in opt.state()?.values() {
            assert!(!t.track_op(), "optimizer state tracks an op");
        }
        Ok(())
    }

    #[test]
    fn keeps_an_exponential_average_that_survives_a_restore() -> Result<()> {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu)?;
        let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig { lr: 0.1, ..Default::default() })?;
        opt.keep_average(0.5)?;
        let mut expected = w.as_tensor().to_vec1::<f32>()?;
        for _ in 0..3 {
            opt.backward_step(&w.as_tensor().sqr()?.sum_all()?)?;
            let now = w.as_tensor().to_vec1::<f32>()?;
            expected.iter_mut().zip(&now).for_each(|(e, n)| *e = 0.5 * *e + 0.5 * n);
        }
        let averages = opt.averages().unwrap();
        assert_eq!(averages[0].1.to_vec1::<f32>()?, expected);
        let state = opt.state()?;
        let mut again = Adam::new(vec![("w".into(), w.clone())], AdamConfig::default())?;
        again.keep_average(0.5)?;
        again.restore(&state, 3)?;
        assert_eq!(again.averages().unwrap()[0].1.to_vec1::<f32>()?, expected);
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
