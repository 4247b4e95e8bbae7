//! A pool's answer as published: the publish-time steps of the pipeline, once per address
//! family, then one view per site that clients may be sent to (`topology`, `nearest`), each
//! encoded (and signed, in a signed zone).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use super::{Table, cell_of};
use crate::model;
use crate::plan::PoolId;
use crate::select::pipeline::{self, NoTrace};
use crate::select::{Eligible, Family};
use crate::snapshot::{self, Placing, PoolAnswer, View};

impl Table {
    /// Run the publish-time steps of the pipeline for one pool and encode the result: health,
    /// failover and `when_all_down` once per family, then topology once per site.
    pub(super) fn answer_of(&self, id: PoolId) -> PoolAnswer {
        let (zone, pool) = self.zone_and_pool(id);
        let judge = self.judge(id);
        let v4 = pipeline::family(pool, Family::V4, &judge, &mut NoTrace);
        let v6 = pipeline::family(pool, Family::V6, &judge, &mut NoTrace);
        let placing = match (pool.policy.topology, pool.policy.nearest) {
            (true, _) => Placing::Topology,
            (_, true) => Placing::Nearest,
            _ => Placing::None,
        };
        let snapshot_zone = self
            .zones
            .get(snapshot::lower_wire(&zone.origin).as_slice());
        let orders = snapshot_zone
            .and_then(|z| z.topology.as_ref())
            .filter(|_| placing != Placing::None)
            .map_or(&[][..], |t| t.orders());
        let cells = &self.pool_cells[id as usize];
        // Every address a pool answers with has a cell (fallbacks too); a detached one would
        // only go uncounted.
        let hits = |address: IpAddr| cell_of(cells, address).cloned().unwrap_or_default();
        let signer = snapshot_zone.and_then(|z| z.signer.clone());
        let names = self.pool_names.get(id as usize);
        let encode = |e: &Eligible, site, f| {
            let e = pipeline::keep_site(e, site);
            let mut fam = snapshot::build::family(pool, &e, f, &hits);
            if let (Some(s), Some(names)) = (&signer, names) {
                snapshot::build::sign_family(&mut fam, s, names);
            }
            fam
        };
        // An order's view depends only on the first of its sites with members, per family:
        // one view per such pair, however many orders lead to it.
        let first = |e: &Eligible, order: &[model::SiteRef]| match e {
            Eligible::Members { members, .. } => crate::select::first_site(members, order),
            _ => None,
        };
        let mut views = vec![View {
            v4: encode(&v4, None, Family::V4),
            v6: encode(&v6, None, Family::V6),
        }];
        let mut seen: HashMap<(Option<usize>, Option<usize>), u16> = HashMap::new();
        seen.insert((None, None), 0);
        let by_order: Arc<[u16]> = orders
            .iter()
            .map(|order| {
                let key = (first(&v4, order), first(&v6, order));
                *seen.entry(key).or_insert_with(|| {
                    views.push(View {
                        v4: encode(&v4, key.0, Family::V4),
                        v6: encode(&v6, key.1, Family::V6),
                    });
                    (views.len() - 1) as u16
                })
            })
            .collect();
        PoolAnswer {
            views: views.into(),
            by_order,
            placing,
        }
    }
}
