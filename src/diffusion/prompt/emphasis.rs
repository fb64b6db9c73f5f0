//! AUTOMATIC1111's prompt emphasis, as its `prompt_parser.py` defines it:
//! `(text)` multiplies attention by 1.1, `[text]` divides by 1.1,
//! `(text:1.3)` sets a factor, brackets nest and multiply, `\(` `\)` `\[`
//! `\]` `\\` are literal, brackets left open close at the end of the prompt,
//! closers without an opener are literal, and `BREAK` (a word of its own)
//! starts a new chunk. Pieces come back with their weights, neighbours of
//! equal weight merged. A `BREAK` is the piece ("BREAK", −1) as in A1111,
//! including its quirk: inside brackets its weight is multiplied too, and it
//! is then read as the word "BREAK".

/// A piece of prompt text and its attention weight.
pub type Piece = (String, f64);

/// The weight that marks a `BREAK` piece.
pub const BREAK_WEIGHT: f64 = -1.0;

/// Whether a piece is a chunk break.
pub fn is_break(piece: &Piece) -> bool {
    piece.0 == "BREAK" && piece.1 == BREAK_WEIGHT
}

const ROUND: f64 = 1.1;
const SQUARE: f64 = 1.0 / 1.1;

/// One token of the syntax (the alternatives of A1111's `re_attention`),
/// with the text it matched.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind<'a> {
    /// A backslash and the character it escapes (none for a lone `\`).
    Escaped,
    Open,
    OpenSquare,
    /// `:` number `)`, with the number's text.
    WeightClose(&'a str),
    Close,
    CloseSquare,
    /// Any other run of text (or a lone `:`).
    Text,
}

/// Python's `\s` for str patterns.
fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `\w` for str patterns (near enough: Unicode alphanumerics and `_`).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn lex(text: &str) -> Vec<(Kind<'_>, &str)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let (kind, len) = match c {
            '\\' => match rest[1..].chars().next() {
                Some('(' | ')' | '[' | ']' | '\\') => (Kind::Escaped, 2),
                _ => (Kind::Escaped, 1),
            },
            '(' => (Kind::Open, 1),
            '[' => (Kind::OpenSquare, 1),
            ')' => (Kind::Close, 1),
            ']' => (Kind::CloseSquare, 1),
            ':' => match weight_close(rest) {
                Some((number, len)) => (Kind::WeightClose(number), len),
                None => (Kind::Text, 1),
            },
            _ => (Kind::Text, rest.find(['\\', '(', ')', '[', ']', ':']).unwrap_or(rest.len())),
        };
        out.push((kind, &rest[..len]));
        rest = &rest[len..];
    }
    out
}

/// `:\s*([+-]?[.\d]+)\s*\)` at the start of `s`: the number and the match's length.
fn weight_close(s: &str) -> Option<(&str, usize)> {
    let trimmed = s[1..].trim_start_matches(is_space);
    let start = s.len() - trimmed.len();
    let sign = usize::from(trimmed.starts_with(['+', '-']));
    let body = &trimmed[sign..];
    let digits = body.find(|c: char| !(c == '.' || c.is_ascii_digit())).unwrap_or(body.len());
    if digits == 0 {
        return None;
    }
    let number_end = start + sign + digits;
    let after = s[number_end..].trim_start_matches(is_space);
    after.starts_with(')').then(|| (&s[start..number_end], s.len() - after.len() + 1))
}

/// Splits a text run at `\s*\bBREAK\b\s*`, as `re.split` does.
fn split_breaks(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut last, mut from) = (0, 0);
    while let Some(found) = text[from..].find("BREAK") {
        let at = from + found;
        let end = at + "BREAK".len();
        let bounded =
            !text[..at].chars().next_back().is_some_and(is_word) && !text[end..].chars().next().is_some_and(is_word);
        if !bounded {
            from = at + 1;
            continue;
        }
        let start = last.max(text[..at].trim_end_matches(is_space).len());
        parts.push(&text[last..start]);
        last = text.len() - text[end..].trim_start_matches(is_space).len();
        from = last;
    }
    parts.push(&text[last..]);
    parts
}

/// The weighted pieces of a prompt.
pub fn parse(prompt: &str) -> Vec<Piece> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut round: Vec<usize> = Vec::new();
    let mut square: Vec<usize> = Vec::new();
    fn multiply(pieces: &mut [Piece], from: usize, factor: f64) {
        for piece in &mut pieces[from..] {
            piece.1 *= factor;
        }
    }
    for (kind, text) in lex(prompt) {
        match kind {
            Kind::Escaped => pieces.push((text[1..].to_owned(), 1.0)),
            Kind::Open => round.push(pieces.len()),
            Kind::OpenSquare => square.push(pieces.len()),
            // A1111's float() accepts what Rust's parse does for [+-]?[.\d]+;
            // text like "1.2.3" raises there and stays literal here.
            Kind::WeightClose(number) if !round.is_empty() && number.parse::<f64>().is_ok() => {
                let from = round.pop().unwrap_or_default();
                multiply(&mut pieces, from, number.parse().unwrap_or(1.0));
            }
            Kind::Close if !round.is_empty() => {
                let from = round.pop().unwrap_or_default();
                multiply(&mut pieces, from, ROUND);
            }
            Kind::CloseSquare if !square.is_empty() => {
                let from = square.pop().unwrap_or_default();
                multiply(&mut pieces, from, SQUARE);
            }
            _ => {
                for (i, part) in split_breaks(text).into_iter().enumerate() {
                    if i > 0 {
                        pieces.push(("BREAK".into(), BREAK_WEIGHT));
                    }
                    pieces.push((part.to_owned(), 1.0));
                }
            }
        }
    }
    for from in round {
        multiply(&mut pieces, from, ROUND);
    }
    for from in square {
        multiply(&mut pieces, from, SQUARE);
    }
    if pieces.is_empty() {
        pieces.push((String::new(), 1.0));
    }
    let mut merged: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match merged.last_mut() {
            Some(last) if last.1 == piece.1 => last.0.push_str(&piece.0),
            _ => merged.push(piece),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(prompt: &str) -> Vec<(String, f64)> {
        parse(prompt).into_iter().map(|(t, w)| (t, (w * 1e6).round() / 1e6)).collect()
    }

    fn v(items: &[(&str, f64)]) -> Vec<(String, f64)> {
        items.iter().map(|(t, w)| (t.to_string(), *w)).collect()
    }

    /// The examples in A1111's own docstring of parse_prompt_attention.
    #[test]
    fn a1111_docstring_examples() {
        assert_eq!(p("normal text"), v(&[("normal text", 1.0)]));
        assert_eq!(p("an (important) word"), v(&[("an ", 1.0), ("important", 1.1), (" word", 1.0)]));
        assert_eq!(p("(unbalanced"), v(&[("unbalanced", 1.1)]));
        assert_eq!(p("\\(literal\\]"), v(&[("(literal]", 1.0)]));
        assert_eq!(p("(unnecessary)(parens)"), v(&[("unnecessaryparens", 1.1)]));
        assert_eq!(
            p("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            v(&[
                ("a ", 1.0),
                ("house", 1.573),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641),
                (".", 1.1),
            ])
        );
    }

    #[test]
    fn breaks_and_stray_closers() {
        assert_eq!(p("a BREAK b"), v(&[("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]));
        assert_eq!(p("BREAKFAST"), v(&[("BREAKFAST", 1.0)]));
        assert_eq!(p("x) y] :2)"), v(&[("x) y] :2)", 1.0)]));
        assert_eq!(p("(a BREAK b)"), v(&[("a", 1.1), ("BREAK", -1.1), ("b", 1.1)]));
        assert_eq!(p(""), v(&[("", 1.0)]));
    }
}
