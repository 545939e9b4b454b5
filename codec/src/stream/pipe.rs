//! A three-stage pipeline over recycled buffers: a reader thread fills input buffers, the
//! calling thread transforms each into an output buffer (spreading the work over rayon's pool),
//! a writer thread drains them. Channels are FIFO and each stage is one thread, so output
//! order is input order. The buffers are allocated once by the caller and passed round, so
//! memory stays at `ins.len()` + `outs.len()` buffers whatever the stream length.

use std::sync::mpsc::sync_channel;

use super::StreamError;

/// Run `read → work → write` until `read` reports the end (`Ok(false)`) or any stage fails.
/// The first error wins; a failing stage stops the others (their channels close).
pub(crate) fn run<A: Send, B: Send>(
    ins: Vec<A>,
    outs: Vec<B>,
    mut read: impl FnMut(&mut A) -> Result<bool, StreamError> + Send,
    mut work: impl FnMut(&mut A, &mut B) -> Result<(), StreamError>,
    mut write: impl FnMut(&mut B) -> Result<(), StreamError> + Send,
) -> Result<(), StreamError> {
    let (free_a_tx, free_a_rx) = sync_channel::<A>(ins.len());
    let (full_a_tx, full_a_rx) = sync_channel::<Result<A, StreamError>>(ins.len());
    let (free_b_tx, free_b_rx) = sync_channel::<B>(outs.len());
    let (full_b_tx, full_b_rx) = sync_channel::<B>(outs.len());
    for a in ins {
        // Capacity equals the buffer count, so these never block; the receivers are alive.
        let _ = free_a_tx.send(a);
    }
    for b in outs {
        let _ = free_b_tx.send(b);
    }
    std::thread::scope(|s| {
        let reader = s.spawn(move || {
            while let Ok(mut a) = free_a_rx.recv() {
                match read(&mut a) {
                    Ok(true) => {
                        if full_a_tx.send(Ok(a)).is_err() {
                            return;
                        }
                    }
                    Ok(false) => return,
                    Err(e) => {
                        let _ = full_a_tx.send(Err(e));
                        return;
                    }
                }
            }
        });
        let writer = s.spawn(move || -> Result<(), StreamError> {
            while let Ok(mut b) = full_b_rx.recv() {
                write(&mut b)?;
                // Once the middle stage is done nobody takes buffers back, but buffers still
                // queued must be written: ignore the failed return and keep draining.
                let _ = free_b_tx.send(b);
            }
            Ok(())
        });
        // The middle stage owns its channel ends so that returning (normally or early on an
        // error) closes them and lets the reader and writer finish.
        let mut middle = move || -> Result<(), StreamError> {
            for a in full_a_rx.iter() {
                let mut a = a?;
                let Ok(mut b) = free_b_rx.recv() else {
                    // The writer stopped on an error; it is reported below.
                    return Ok(());
                };
                work(&mut a, &mut b)?;
                if full_b_tx.send(b).is_err() {
                    return Ok(());
                }
                // The reader may already have finished; then the buffer is simply dropped.
                let _ = free_a_tx.send(a);
            }
            Ok(())
        };
        let result = middle();
        // Dropping the closure drops its channel ends: the writer sees the end of the stream.
        drop(middle);
        let written = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        reader
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        result.and(written)
    })
}
