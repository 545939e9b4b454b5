//! The bus id: 128 random bits stored once under `refs/mac-bridge/bus-id`. Requesters put it
//! in the manifest as `audience`; runners refuse a manifest addressed to another bus, so a
//! signed request cannot be replayed from one bus onto another that trusts the same key.

use serde::{Deserialize, Serialize};

use crate::clock;
use crate::git::{Bus, GitError, PushOutcome, PushUpdate, TreeChange, read_blob, write_commit};
use crate::layout::{self, MAX_RECORD_BYTES};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BusIdRecord {
    pub bus_id: String,
    pub created_at: String,
}

/// The bus's id, if it has one (as of now on the remote).
pub fn read(bus: &Bus) -> Result<Option<String>, GitError> {
    let listed = bus.ls_remote(&[layout::BUS_ID_REF])?;
    let Some((_, oid)) = listed.into_iter().find(|(n, _)| n == layout::BUS_ID_REF) else {
        return Ok(None);
    };
    if bus.fetched(layout::BUS_ID_REF) != Some(oid) {
        bus.fetch(&[layout::BUS_ID_REF.to_string()])?;
    }
    let Some(bytes) = read_blob(bus.repo(), oid, layout::BUS_JSON, MAX_RECORD_BYTES)? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice::<BusIdRecord>(&bytes)
        .ok()
        .map(|r| r.bus_id)
        .filter(|id| is_bus_id(id)))
}

/// The bus's id, creating it (create-only push) when the bus has none yet.
pub fn read_or_create(bus: &Bus) -> Result<Option<String>, GitError> {
    if let Some(id) = read(bus)? {
        return Ok(Some(id));
    }
    let id = crate::manifest::new_nonce().map_err(|e| GitError::Parse {
        what: "random bytes",
        line: e.to_string(),
    })?;
    let record = BusIdRecord {
        bus_id: id,
        created_at: clock::format(clock::now()),
    };
    let commit = write_commit(
        bus.repo(),
        &[],
        None,
        &[TreeChange::put(
            layout::BUS_JSON,
            crate::records::to_bytes(&record),
        )],
        "macbridge bus id\n",
    )?;
    let update = PushUpdate {
        src: commit,
        dst: layout::BUS_ID_REF.to_string(),
    };
    match bus.push(&[update], false)? {
        PushOutcome::Accepted => Ok(Some(record.bus_id)),
        // Someone else created it first: theirs is the id.
        PushOutcome::Rejected { .. } => read(bus),
    }
}

/// 32 lowercase hex digits.
pub fn is_bus_id(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
