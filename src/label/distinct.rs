//! Names a person can tell apart. CPP's vote names every cluster on its own, so two clusters can win the same
//! caption (two "snow" clusters). The vote's result stays as it is (`ClusterName::caption`); what is shown to
//! people — the report, the CSV, the log — gets distinct names from here.

use super::vote::ClusterName;

/// One display name per cluster (`None` for an empty one), all distinct. Among clusters that won the same
/// caption, the one with the highest score keeps the bare name; each other is called "name (alt)", with alt
/// its most voted runner-up that no cluster won and no earlier cluster of the group took, else "name #2",
/// "name #3", ….
pub fn distinct_names(names: &[ClusterName], vocabulary: &[&str]) -> Vec<Option<String>> {
    let winners: Vec<Option<usize>> = names.iter().map(|n| n.caption).collect();
    let mut shown: Vec<Option<String>> = winners.iter().map(|w| w.map(|c| vocabulary[c].to_string())).collect();
    let mut groups: Vec<usize> = winners.iter().flatten().copied().collect();
    groups.sort_unstable();
    groups.dedup();
    for caption in groups {
        let mut members: Vec<usize> = (0..names.len()).filter(|&j| winners[j] == Some(caption)).collect();
        if members.len() < 2 {
            continue;
        }
        // Highest score first; ties to the lower cluster index.
        members.sort_by(|&a, &b| names[b].score.total_cmp(&names[a].score).then(a.cmp(&b)));
        let mut taken: Vec<usize> = Vec::new();
        for (rank, &j) in members.iter().enumerate().skip(1) {
            let alt = names[j].runners_up.iter().map(|&(c, _)| c).find(|c| !winners.contains(&Some(*c)) && !taken.contains(c));
            shown[j] = Some(match alt {
                Some(c) => {
                    taken.push(c);
                    format!("{} ({})", vocabulary[caption], vocabulary[c])
                }
                None => format!("{} #{}", vocabulary[caption], rank + 1),
            });
        }
    }
    // A "name (alt)" or "name #i" could still equal some other cluster's bare name, if the vocabulary itself
    // holds such strings: number any remaining repeat.
    for j in 0..shown.len() {
        let mut i = 2;
        while shown[j].is_some() && shown[..j].contains(&shown[j]) {
            let base = shown[j].clone().unwrap_or_default();
            shown[j] = Some(format!("{base} #{i}"));
            i += 1;
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(caption: Option<usize>, score: f32, runners_up: &[usize]) -> ClusterName {
        ClusterName { caption, score, members: 1, runners_up: runners_up.iter().map(|&c| (c, 0.1)).collect() }
    }

    #[test]
    fn clusters_sharing_a_caption_get_their_runner_up_and_stay_distinct() {
        let vocab = ["snow", "night", "dog", "fog", "a (b)"];
        let names = [
            name(Some(0), 0.4, &[1, 3]), // "snow", lower score: takes a runner-up no cluster won ("fog")
            name(Some(1), 0.9, &[0]),    // "night"
            name(Some(0), 0.6, &[2]),    // "snow", highest score: keeps the bare name
            name(None, 0.0, &[]),        // empty cluster
            name(Some(0), 0.3, &[3, 1]), // "snow": "fog" is taken, "night" was won: numbered
            name(Some(2), 0.5, &[]),     // "dog"
        ];
        let shown = distinct_names(&names, &vocab);
        let want = [Some("snow (fog)"), Some("night"), Some("snow"), None, Some("snow #3"), Some("dog")];
        assert_eq!(shown, want.map(|s| s.map(String::from)));
        // Unique captions pass through unchanged.
        assert_eq!(distinct_names(&names[1..2], &vocab), vec![Some("night".to_string())]);
    }

    #[test]
    fn names_stay_distinct_when_the_vocabulary_holds_a_decorated_name() {
        let vocab = ["a", "b", "a (b)"];
        let names = [name(Some(0), 0.9, &[]), name(Some(0), 0.5, &[1]), name(Some(2), 0.7, &[])];
        let shown: Vec<String> = distinct_names(&names, &vocab).into_iter().flatten().collect();
        let mut unique = shown.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), shown.len(), "{shown:?}");
    }
}
