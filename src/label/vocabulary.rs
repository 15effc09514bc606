//! Candidate vocabularies for self-labeling.

/// The 1000 ImageNet-1k class names (clean names from open_clip's `zero_shot_metadata.py`, MIT; regenerate
/// with `tools/data/extract_imagenet_classes.py`).
const IMAGENET1K: &str = include_str!("imagenet1k_classes.txt");

/// The default candidate vocabulary: ImageNet-1k class names, duplicates removed (ImageNet has two
/// "missile" and two "sunglasses" synsets; a caption list needs each name once), in their original order.
pub fn default_vocabulary() -> Vec<&'static str> {
    let mut seen = std::collections::HashSet::new();
    IMAGENET1K.lines().map(str::trim).filter(|l| !l.is_empty() && seen.insert(*l)).collect()
}

/// Captions from class names with a template containing `{}` (CPP uses "a photo of a {}.").
pub fn prompts(names: &[&str], template: &str) -> crate::Result<Vec<String>> {
    if !template.contains("{}") {
        return Err(crate::invalid_arg!("caption template '{template}' has no '{{}}' placeholder"));
    }
    Ok(names.iter().map(|n| template.replacen("{}", n, 1)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_vocabulary_is_imagenet_without_duplicates() {
        let v = default_vocabulary();
        assert_eq!(v.len(), 998);
        assert_eq!(v[0], "tench");
        assert_eq!(v.iter().filter(|&&n| n == "missile").count(), 1);
    }

    #[test]
    fn prompts_fill_the_template() {
        assert_eq!(prompts(&["cat"], "a photo of a {}.").unwrap(), vec!["a photo of a cat."]);
        assert!(prompts(&["cat"], "no placeholder").is_err());
    }
}
