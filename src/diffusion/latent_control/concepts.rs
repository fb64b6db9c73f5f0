//! Concept sliders: a slider made of two prompts ("happy" / "sad") moves
//! the text conditioning along the difference of their text states, by its
//! value. Several add up; at 0 a slider changes nothing.

use candle_core::{Result, Tensor};

use crate::diffusion::sampling::Conditioning;

/// The prompt's text states: the last row of the context (the first,
/// under guidance, is the negative prompt's).
fn prompt_row(cond: &Conditioning) -> Result<Tensor> {
    let rows = cond.context.dim(0)?;
    cond.context.narrow(0, rows - 1, 1)
}

/// A slider's direction: its positive prompt's text states minus its negative's.
pub fn direction(positive: &Conditioning, negative: &Conditioning) -> Result<Tensor> {
    prompt_row(positive)? - prompt_row(negative)?
}

/// `cond` with its prompt's text states moved by Σ value·direction. Sliders
/// at 0 are skipped, so all at 0 give `cond` back unchanged.
pub fn apply(cond: &Conditioning, moves: &[(Tensor, f64)]) -> Result<Conditioning> {
    let moves: Vec<&(Tensor, f64)> = moves.iter().filter(|(_, v)| *v != 0.0).collect();
    if moves.is_empty() {
        return Ok(cond.clone());
    }
    let mut row = prompt_row(cond)?;
    for (direction, value) in moves {
        row = (row + (direction * *value)?)?;
    }
    let rows = cond.context.dim(0)?;
    let context = if rows == 2 { Tensor::cat(&[&cond.context.narrow(0, 0, 1)?, &row], 0)? } else { row };
    Ok(Conditioning { context, added: cond.added.clone() })
}
