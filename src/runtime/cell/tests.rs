use super::*;
use crate::task::Closure;

/// The size of the cell (without the `Arc`'s two counts) that `submit(f)`
/// makes.
fn cell_size<F, T>(_: &F) -> usize
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    std::mem::size_of::<Cell<Closure<F>, T>>()
}

#[test]
fn a_cell_of_a_small_task_is_five_words() {
    // With the `Arc`'s counts, seven words: 56 bytes, a 64-byte block of
    // glibc's `malloc`. The id, the flags, the group, the extras (name and
    // stop source, out of line) and the slot (closure, value or panic).
    let word = std::mem::size_of::<usize>();
    assert_eq!(cell_size(&|| {}), 5 * word);
    assert_eq!(cell_size(&|| 7_u64), 5 * word);
    let captured = 3_u64;
    assert_eq!(cell_size(&move || captured), 5 * word);
    // A value that needs no more than a word keeps a panic in a box of its
    // own: an `Err` costs no room in the slot.
    assert_eq!(cell_size(&|| -> Result<u32, u32> { Ok(1) }), 5 * word);
}

/// Counts no run: the tests have no pool.
const NO_TALLY: Tally<'static> = Tally {
    shared: None,
    index: None,
};

/// A value that counts its drops.
struct Dropped(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn drops() -> Arc<std::sync::atomic::AtomicUsize> {
    Arc::new(std::sync::atomic::AtomicUsize::new(0))
}

fn count(drops: &Arc<std::sync::atomic::AtomicUsize>) -> usize {
    drops.load(std::sync::atomic::Ordering::SeqCst)
}

/// Every way a cell can end, each joined, and each with its handle gone
/// first: the value, the panic or the reason comes out as it went in, and
/// whatever the slot held is dropped exactly once (Miri checks the slot's
/// union is read as what was written).
#[test]
fn each_end_is_read_back_as_it_was_published_and_dropped_once() {
    // A value, joined.
    let dropped = drops();
    let value = Dropped(dropped.clone());
    let cell = Cell::new(None, Closure(move || value), None);
    assert_eq!(cell.run(NO_TALLY, Custody::Pool), Ran::Here(Custody::Pool));
    let joined = cell.join();
    assert_eq!(count(&dropped), 0);
    drop(joined);
    drop(cell);
    assert_eq!(count(&dropped), 1);

    // A value whose handle went before it was published, and one that was
    // published and never taken.
    for detach_first in [true, false] {
        let dropped = drops();
        let value = Dropped(dropped.clone());
        let cell = Cell::new(None, Closure(move || value), None);
        if detach_first {
            assert!(cell.detach().is_none());
        }
        cell.run(NO_TALLY, Custody::Pool);
        if !detach_first {
            assert!(cell.detach().is_none());
        }
        assert_eq!(count(&dropped), 1);
        drop(cell);
        assert_eq!(count(&dropped), 1);
    }

    // A panic, joined; and one whose handle is dropped after it.
    let cell = Cell::new(None, Closure(|| -> u8 { panic!("in the slot") }), None);
    cell.run(NO_TALLY, Custody::Pool);
    let err = cell.join().unwrap_err();
    assert_eq!(err.panic_message(), Some("in the slot"));
    let cell = Cell::new(None, Closure(|| -> u8 { panic!("never joined") }), None);
    cell.run(NO_TALLY, Custody::Pool);
    let payload = cell.detach().expect("the panic is the handle's to report");
    assert_eq!(
        crate::error::TaskError::Panicked(payload).panic_message(),
        Some("never joined")
    );

    // A cancel: the closure is dropped, nothing is in the slot.
    let dropped = drops();
    let captured = Dropped(dropped.clone());
    let cell = Cell::new(None, Closure(move || drop(captured)), None);
    assert_eq!(
        cell.cancel(IfRunning::Stop),
        CancelOutcome::Cancelled(Custody::Pool)
    );
    assert_eq!(count(&dropped), 1);
    assert!(cell.join().unwrap_err().is_cancelled());
    assert!(cell.detach().is_none());

    // An expiry.
    let cell = Cell::new(None, Closure(|| 5_u64), None);
    assert!(cell.expire(NO_TALLY));
    assert!(matches!(cell.join(), Err(crate::error::TaskError::Expired)));

    // A result dropped with the last reference, never joined or detached.
    let dropped = drops();
    let value = Dropped(dropped.clone());
    let cell = Cell::new(None, Closure(move || value), None);
    cell.run(NO_TALLY, Custody::Pool);
    drop(cell);
    assert_eq!(count(&dropped), 1);
}

/// `take_unshared` finds the end of a cell only its handle holds, for a
/// value and for a cancel alike.
#[test]
fn the_last_handle_takes_any_end_without_waiting() {
    let mut cell = Cell::new(None, Closure(|| 9_u32), None);
    assert!(Arc::get_mut(&mut cell).unwrap().take_unshared().is_none());
    cell.run(NO_TALLY, Custody::Pool);
    let taken = Arc::get_mut(&mut cell).unwrap().take_unshared();
    assert_eq!(taken.map(Result::ok), Some(Some(9)));

    let mut cell = Cell::new(None, Closure(|| 9_u32), None);
    cell.cancel(IfRunning::Leave);
    let taken = Arc::get_mut(&mut cell).unwrap().take_unshared();
    assert!(taken.expect("published").unwrap_err().is_cancelled());
}
