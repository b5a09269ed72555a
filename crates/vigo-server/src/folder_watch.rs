//! Watching a folder for changed files (notify), shared by the two
//! watchers: the local secrets backend's folder (`watcher.rs`) and
//! `config_dir` (`deploy.rs`). Each says which paths are not its concern.

use std::path::Path;

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// A running watcher: dropping it stops inotify.
pub(crate) struct FolderWatch {
    _watcher: RecommendedWatcher,
    /// One message per burst of relevant events (a one-slot channel).
    pub(crate) events: mpsc::Receiver<()>,
}

/// Watches `dir` recursively. The notify callback runs on notify's own
/// thread; it only fills a one-slot tokio channel, so a burst of events is
/// one wake-up. Events that only concern paths `ignored` says yes to are
/// dropped (see [`may_change_files`]).
pub(crate) fn watch_folder(
    dir: &Path,
    ignored: fn(&Path) -> bool,
) -> Result<FolderWatch, notify::Error> {
    let (tx, events) = mpsc::channel(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| {
        let relevant = match &event {
            Ok(event) => may_change_files(event, ignored),
            // A lost or overflowed event queue: look, to be safe.
            Err(_) => true,
        };
        if relevant {
            // Full means a wake-up is already pending; closed means the
            // watching task is gone. Neither needs anything more.
            let _ = tx.try_send(());
        }
    })?;
    watcher.watch(dir, RecursiveMode::Recursive)?;
    Ok(FolderWatch {
        _watcher: watcher,
        events,
    })
}

/// Whether `event` may mean that a file was created, written, replaced or
/// removed: not a read (the watcher's owner reads the folder itself), not a
/// metadata change, and not only paths `ignored` says yes to.
pub(crate) fn may_change_files(event: &Event, ignored: fn(&Path) -> bool) -> bool {
    let kind_counts = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Any
        | EventKind::Create(_)
        | EventKind::Modify(_)
        | EventKind::Remove(_)
        | EventKind::Other => true,
    };
    kind_counts && (event.paths.is_empty() || event.paths.iter().any(|p| !ignored(p)))
}
