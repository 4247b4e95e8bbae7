//! `names:` → bindings: each name inside the zone, bound to a known pool, not also a static
//! name, not below a delegation.

use std::collections::{HashMap, HashSet};

use hickory_proto::rr::{LowerName, Name};

use super::diag::{Loc, Reporter};
use super::format::{Entries, Spanned};
use super::values::{loc, name};
use crate::model::{Binding, Pool};

/// `names:`; `pool_names` are the declared pools, `pools` the valid ones (a binding to a declared
/// but invalid pool is left out: that pool's own error rejects the zone), `statics` are the
/// owners of static records, `cuts` the delegation points.
pub fn bindings(
    entries: &Entries<Spanned<super::format::BindingFile>>,
    origin: &Name,
    pool_names: &HashSet<String>,
    pools: &[Pool],
    statics: &HashSet<LowerName>,
    cuts: &HashSet<LowerName>,
    r: &mut Reporter,
) -> Vec<Binding> {
    let mut out: Vec<Binding> = Vec::new();
    let mut bound: HashSet<LowerName> = HashSet::new();
    let index: HashMap<&str, usize> = pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    for (key, b) in &entries.0 {
        let base = format!("names.{}", key.value);
        let owner = match name(&key.value, Some(origin)) {
            Ok(n) => n,
            Err(m) => {
                r.error(loc(key), base, m);
                continue;
            }
        };
        let lower = LowerName::new(&owner);
        let at: Loc = loc(key);
        if !origin.zone_of(&owner) {
            r.error(at, base, format!("{owner} is outside the zone {origin}"));
        } else if statics.contains(&lower) {
            r.error(
                at,
                base,
                format!(
                    "{owner} also has static records; a name is either static or bound to a pool"
                ),
            );
        } else if !cuts.is_empty() && cuts.iter().any(|c| c.zone_of(&lower)) {
            r.error(
                at,
                base,
                format!("{owner} is at or below a delegation; gslbd is not authoritative there"),
            );
        } else if bound.contains(&lower) {
            r.error(at, base, format!("{owner} is bound twice"));
        } else if !pool_names.contains(&b.value.pool.value) {
            r.error(
                loc(&b.value.pool),
                format!("{base}.pool"),
                format!("no pool named {:?} in this zone", b.value.pool.value),
            );
        } else if let Some(&pool) = index.get(b.value.pool.value.as_str()) {
            bound.insert(lower);
            out.push(Binding { name: owner, pool });
        }
    }
    out
}
