//! Run counts by state, per DAG (`/dagStats`).

use std::collections::HashMap;

use serde_json::{Value, json};

use super::kit::query_all;
use super::views::display_name;
use crate::api::http::{ApiError, Method, Reply, Req};
use crate::api::route::{Ctx, Params, Route, guarded};
use crate::auth::Role;
use crate::model::RunState;
use crate::store::Store;

use Method::Get;

/// DAG stats.
#[rustfmt::skip]
pub static ROUTES: &[Route] = &[
    guarded(Get, "/api/v2/dagStats", Role::Viewer, None, "Run counts by state, per DAG", stats),
];

/// Run counts per DAG, the four run states always in Airflow's order. As in Airflow,
/// a DAG without runs is not listed.
fn stats(_ctx: &Ctx, store: &mut Store, req: &Req, _p: &Params) -> Result<Reply, ApiError> {
    // Repeated (`dag_ids=a&dag_ids=b`, Airflow 3) or comma-separated (Airflow 2); DAG ids
    // cannot contain commas, so both read the same.
    let ids: Vec<String> = query_all(req, "dag_ids")
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect();
    let mut counts: Vec<(String, HashMap<String, u64>)> = Vec::new();
    for (dag_id, state, n) in store.run_counts(&ids)? {
        match counts.last_mut() {
            Some((id, by_state)) if *id == dag_id => {
                by_state.insert(state, n);
            }
            _ => counts.push((dag_id, HashMap::from([(state, n)]))),
        }
    }
    let mut dags = Vec::new();
    for (dag_id, by_state) in counts {
        let name = store
            .dag(&dag_id)?
            .map_or_else(|| dag_id.clone(), |r| display_name(&r.dag).to_string());
        let stats: Vec<Value> = RunState::ALL
            .iter()
            .map(|s| json!({"state": s.as_str(), "count": by_state.get(s.as_str()).copied().unwrap_or(0)}))
            .collect();
        dags.push(json!({"dag_id": dag_id, "dag_display_name": name, "stats": stats}));
    }
    let total = dags.len();
    Ok(Reply::json(
        200,
        &json!({"dags": dags, "total_entries": total}),
    ))
}
