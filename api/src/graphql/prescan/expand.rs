//! The spread graph: each fragment's size and nesting with every spread
//! replaced by the fragment it names, sized once in topological order.

use async_graphql::ServerError;

use super::{Definition, malformed};

/// The size and nesting of `definition` with each spread replaced by its
/// fragment, given the fragments' own expanded figures. A spread of an
/// unknown fragment adds nothing (validation refuses it).
pub(super) fn expanded(definition: &Definition, sizes: &[u64], depths: &[usize]) -> (u64, usize) {
    let mut size = definition.own_size;
    let mut depth = definition.own_depth;
    for &(fragment, at) in &definition.spreads {
        if let (Some(s), Some(d)) = (sizes.get(fragment), depths.get(fragment)) {
            size = size.saturating_add(*s);
            // The fragment's selection set (its depth 1) merges into the
            // selection set holding the spread (depth `at`).
            depth = depth.max(at + d.saturating_sub(1));
        }
    }
    (size, depth)
}

/// The expanded size and nesting of every fragment, computed in topological
/// order of the spread graph (Kahn's algorithm: a fragment is sized once all
/// the fragments it spreads are). A fragment left over is on a cycle, or
/// spreads one that is.
pub(super) fn expand_fragments(
    fragments: &[Definition],
) -> Result<(Vec<u64>, Vec<usize>), ServerError> {
    let n = fragments.len();
    // Spreads of defined fragments not yet sized, per fragment.
    let mut pending: Vec<usize> = vec![0; n];
    // Who spreads fragment i (once per spread).
    let mut spread_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, fragment) in fragments.iter().enumerate() {
        for &(target, _) in &fragment.spreads {
            if let Some(by) = spread_by.get_mut(target) {
                by.push(i);
                pending[i] += 1;
            }
        }
    }
    let mut sizes: Vec<u64> = vec![0; n];
    let mut depths: Vec<usize> = vec![0; n];
    // Sized fragments hold their figures; the rest hold 0 until their turn
    // (never read before: a fragment is sized only when all its targets are).
    let mut ready: Vec<usize> = (0..n).filter(|&i| pending[i] == 0).collect();
    let mut done = 0;
    while let Some(i) = ready.pop() {
        let (size, depth) = expanded(&fragments[i], &sizes, &depths);
        sizes[i] = size;
        depths[i] = depth;
        done += 1;
        for &by in &spread_by[i] {
            pending[by] -= 1;
            if pending[by] == 0 {
                ready.push(by);
            }
        }
    }
    if done < n {
        return Err(malformed(
            "fragments spread one another in a cycle".to_owned(),
            None,
        ));
    }
    Ok((sizes, depths))
}
