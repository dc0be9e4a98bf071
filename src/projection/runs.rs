//! Step functions of time stored as runs: sorted, non-overlapping intervals
//! that each carry one value, with UNKNOWN implicit in the gaps.
//!
//! A probe's state and a service's timeline are both kept this way, so their
//! size grows with the number of state changes, never with the number of
//! observations. Runs are kept canonical (two touching runs never carry the
//! same value), which makes two equal functions equal as vectors.

/// One constant piece of a step function: `value` on `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Run<V> {
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) value: V,
}

impl<V: Copy + PartialEq> Run<V> {
    pub(super) fn length_ms(&self) -> u64 {
        self.end.abs_diff(self.start)
    }
}

/// Appends `run` after the last run of `runs`, merging it into the last one
/// when they touch and carry the same value. Empty runs are dropped.
pub(super) fn push_merged<V: Copy + PartialEq>(runs: &mut Vec<Run<V>>, run: Run<V>) {
    if run.start >= run.end {
        return;
    }
    if let Some(last) = runs.last_mut() {
        if last.end == run.start && last.value == run.value {
            last.end = run.end;
            return;
        }
    }
    runs.push(run);
}

/// The value at instant `t`, or `None` in a gap.
pub(super) fn value_at<V: Copy + PartialEq>(runs: &[Run<V>], t: i64) -> Option<V> {
    let position = runs.partition_point(|run| run.end <= t);
    runs.get(position)
        .filter(|run| run.start <= t)
        .map(|run| run.value)
}

/// The runs intersecting `[from, to)`, cut to it.
pub(super) fn clipped<V: Copy + PartialEq>(runs: &[Run<V>], from: i64, to: i64) -> Vec<Run<V>> {
    let first = runs.partition_point(|run| run.end <= from);
    runs[first..]
        .iter()
        .take_while(|run| run.start < to)
        .map(|run| Run {
            start: run.start.max(from),
            end: run.end.min(to),
            value: run.value,
        })
        .collect()
}

/// Replaces the function on `[from, to)` with `replacement` (canonical runs
/// inside `[from, to)`), keeping `runs` canonical. Returns the position of the
/// first run that may have changed; runs before it are untouched.
///
/// Costs a binary search plus the number of runs in and next to `[from, to)`,
/// so an update near the end of a long history is cheap.
pub(super) fn replace_span<V: Copy + PartialEq>(
    runs: &mut Vec<Run<V>>,
    from: i64,
    to: i64,
    replacement: &[Run<V>],
) -> usize {
    let first_overlapping = runs.partition_point(|run| run.end <= from);
    let past_overlapping = runs.partition_point(|run| run.start < to);
    // One neighbour on each side joins the rebuilt stretch, because a run
    // touching the span may now merge with the replacement.
    let rebuilt_from = first_overlapping.saturating_sub(1);
    let rebuilt_to = (past_overlapping + 1).min(runs.len()).max(rebuilt_from);
    let mut rebuilt = Vec::with_capacity(rebuilt_to - rebuilt_from + replacement.len() + 1);
    for run in &runs[rebuilt_from..rebuilt_to] {
        push_merged(
            &mut rebuilt,
            Run {
                start: run.start,
                end: run.end.min(from),
                value: run.value,
            },
        );
    }
    for run in replacement {
        push_merged(&mut rebuilt, *run);
    }
    for run in &runs[rebuilt_from..rebuilt_to] {
        push_merged(
            &mut rebuilt,
            Run {
                start: run.start.max(to),
                end: run.end,
                value: run.value,
            },
        );
    }
    runs.splice(rebuilt_from..rebuilt_to, rebuilt);
    rebuilt_from
}

/// The smallest interval outside of which the two functions agree, or `None`
/// when they are equal. Both are canonical runs.
pub(super) fn differing_span<V: Copy + PartialEq>(
    before: &[Run<V>],
    after: &[Run<V>],
) -> Option<(i64, i64)> {
    let mut boundaries: Vec<i64> = before
        .iter()
        .chain(after)
        .flat_map(|run| [run.start, run.end])
        .collect();
    boundaries.sort_unstable();
    boundaries.dedup();
    let mut span: Option<(i64, i64)> = None;
    for pair in boundaries.windows(2) {
        let (start, end) = (pair[0], pair[1]);
        if value_at(before, start) != value_at(after, start) {
            span = Some((span.map_or(start, |(first_start, _)| first_start), end));
        }
    }
    span
}

/// The union of possibly overlapping intervals, as sorted disjoint intervals
/// (touching ones joined). Empty intervals are dropped.
pub(super) fn union_of(intervals: impl Iterator<Item = (i64, i64)>) -> Vec<(i64, i64)> {
    let mut sorted: Vec<(i64, i64)> = intervals.filter(|(start, end)| start < end).collect();
    sorted.sort_unstable();
    let mut union: Vec<(i64, i64)> = Vec::with_capacity(sorted.len());
    for (start, end) in sorted {
        match union.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => union.push((start, end)),
        }
    }
    union
}

/// Checks that `runs` are canonical: non-empty, sorted, non-overlapping, and
/// never touching a neighbour with the same value.
pub(super) fn check_canonical<V: Copy + PartialEq>(runs: &[Run<V>]) -> Result<(), String> {
    if let Some(empty) = runs.iter().position(|run| run.start >= run.end) {
        return Err(format!("run {empty} is empty"));
    }
    for (position, pair) in runs.windows(2).enumerate() {
        if pair[0].end > pair[1].start {
            return Err(format!(
                "runs {position} and {} overlap or are out of order",
                position + 1
            ));
        }
        if pair[0].end == pair[1].start && pair[0].value == pair[1].value {
            return Err(format!(
                "runs {position} and {} touch with the same value",
                position + 1
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs written as `(start, end, value)`.
    type Pieces = &'static [(i64, i64, char)];

    fn runs(pieces: &[(i64, i64, char)]) -> Vec<Run<char>> {
        pieces
            .iter()
            .map(|&(start, end, value)| Run { start, end, value })
            .collect()
    }

    #[test]
    fn replace_span_splits_merges_and_stays_canonical() {
        // (existing, from, to, replacement, expected)
        let table: [(Pieces, i64, i64, Pieces, Pieces); 6] = [
            (
                &[(0, 100, 'u')],
                40,
                50,
                &[(40, 50, 'd')],
                &[(0, 40, 'u'), (40, 50, 'd'), (50, 100, 'u')],
            ),
            (
                &[(0, 40, 'u'), (40, 50, 'd'), (50, 100, 'u')],
                40,
                50,
                &[(40, 50, 'u')],
                &[(0, 100, 'u')],
            ),
            (
                &[(0, 100, 'u')],
                100,
                150,
                &[(100, 150, 'u')],
                &[(0, 150, 'u')],
            ),
            (
                &[(0, 100, 'u')],
                90,
                i64::MAX,
                &[(90, 95, 'u')],
                &[(0, 95, 'u')],
            ),
            (
                &[(0, 10, 'u'), (20, 30, 'd'), (40, 50, 'u')],
                5,
                45,
                &[],
                &[(0, 5, 'u'), (45, 50, 'u')],
            ),
            (&[], 5, 10, &[(5, 10, 'd')], &[(5, 10, 'd')]),
        ];
        for (existing, from, to, replacement, expected) in table {
            let mut actual = runs(existing);
            replace_span(&mut actual, from, to, &runs(replacement));
            assert_eq!(
                actual,
                runs(expected),
                "{existing:?} with [{from}, {to}) := {replacement:?}"
            );
            check_canonical(&actual).unwrap();
        }
    }

    #[test]
    fn differing_span_is_tight() {
        let before = runs(&[(0, 50, 'u')]);
        assert_eq!(
            differing_span(&before, &runs(&[(0, 80, 'u')])),
            Some((50, 80))
        );
        assert_eq!(
            differing_span(
                &before,
                &runs(&[(0, 20, 'u'), (20, 30, 'd'), (30, 50, 'u')])
            ),
            Some((20, 30))
        );
        assert_eq!(differing_span(&before, &before), None);
        assert_eq!(differing_span(&before, &[]), Some((0, 50)));
    }

    #[test]
    fn union_joins_overlapping_and_touching_intervals() {
        let union = union_of([(30, 40), (0, 10), (5, 20), (20, 25), (50, 50)].into_iter());
        assert_eq!(union, vec![(0, 25), (30, 40)]);
    }
}
