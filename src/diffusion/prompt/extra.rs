//! A1111's extra-network tags in prompts: `<lora:name:weight>` (also
//! `<lora:name>` at weight 1, and `<lora:name:te:unet>` with separate text
//! encoder and U-Net weights) are taken out of the text the encoder sees
//! and returned; other `<kind:…>` tags are removed too, as A1111 does with
//! networks it knows, and reported so the user sees what was ignored.

/// A LoRA asked for in a prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraTag {
    pub name: String,
    /// Weight on the text encoders.
    pub text_weight: f64,
    /// Weight on the U-Net.
    pub unet_weight: f64,
}

/// A prompt with its tags taken out.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ParsedExtras {
    pub text: String,
    pub loras: Vec<LoraTag>,
    /// Tags of other kinds (`<hypernet:…>`, …), removed and not applied.
    pub ignored: Vec<String>,
}

/// Takes `<kind:args>` tags (A1111's `<(\w+):([^>]+)>`) out of a prompt.
pub fn take_extras(prompt: &str) -> ParsedExtras {
    let mut out = ParsedExtras::default();
    let mut rest = prompt;
    while let Some(open) = rest.find('<') {
        out.text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match parse_tag(after) {
            Some((kind, args, len)) => {
                if kind == "lora" {
                    match lora(args) {
                        Some(tag) => out.loras.push(tag),
                        None => out.ignored.push(format!("<{kind}:{args}>")),
                    }
                } else {
                    out.ignored.push(format!("<{kind}:{args}>"));
                }
                rest = &after[len..];
            }
            None => {
                out.text.push('<');
                rest = after;
            }
        }
    }
    out.text.push_str(rest);
    out
}

/// `kind:args>` at the start of `s`: kind, args and the length through `>`.
fn parse_tag(s: &str) -> Option<(&str, &str, usize)> {
    let colon = s.find(':')?;
    let kind = &s[..colon];
    if kind.is_empty() || !kind.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    let close = s[colon + 1..].find('>')? + colon + 1;
    let args = &s[colon + 1..close];
    (!args.is_empty()).then_some((kind, args, close + 1))
}

fn lora(args: &str) -> Option<LoraTag> {
    let mut parts = args.split(':');
    let name = parts.next()?.trim().to_owned();
    let numbers: Vec<f64> = parts.map(|p| p.trim().parse().ok()).collect::<Option<_>>()?;
    let (text_weight, unet_weight) = match numbers.as_slice() {
        [] => (1.0, 1.0),
        [w] => (*w, *w),
        [te, unet, ..] => (*te, *unet),
    };
    (!name.is_empty()).then_some(LoraTag { name, text_weight, unet_weight })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lora_tags_leave_the_text() {
        let p = take_extras("a castle <lora:pixel-art:0.8>, night <lora:glow> <hypernet:x:1> 3 < 4");
        assert_eq!(p.text, "a castle , night   3 < 4");
        assert_eq!(
            p.loras,
            vec![
                LoraTag { name: "pixel-art".into(), text_weight: 0.8, unet_weight: 0.8 },
                LoraTag { name: "glow".into(), text_weight: 1.0, unet_weight: 1.0 },
            ]
        );
        assert_eq!(p.ignored, vec!["<hypernet:x:1>".to_owned()]);
        let split = take_extras("<lora:a:0.5:1.5>");
        assert_eq!(split.loras[0].text_weight, 0.5);
        assert_eq!(split.loras[0].unet_weight, 1.5);
        assert_eq!(take_extras("<lora:bad:x>").ignored, vec!["<lora:bad:x>".to_owned()]);
    }
}
