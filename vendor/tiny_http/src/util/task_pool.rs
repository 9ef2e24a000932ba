use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

type Task = Box<dyn FnOnce() + Send>;

/// Manages a collection of threads that run at most `max_tasks` tasks at a time.
///
/// A new thread is created when a task is spawned and no idle thread can take it.
/// Any idle thread beyond `MIN_THREADS` dies after a few seconds.
///
/// The bound is kept by the caller: `wait_for_slot` blocks while `max_tasks` tasks are
/// queued or running, and only then is the next task spawned. A worker gives its task's
/// slot back and becomes available again in one step (under the lock), so the pool never
/// holds more than `max_tasks` threads either.
pub struct TaskPool {
    sharing: Arc<Sharing>,
}

struct Sharing {
    state: Mutex<State>,

    // notified whenever a task is added to `todo`, and when the pool is dropped
    task_added: Condvar,

    // notified whenever a task finishes
    slot_freed: Condvar,

    max_tasks: usize,
}

struct State {
    // tasks waiting for an idle worker thread
    todo: VecDeque<Task>,

    // tasks spawned and not finished yet (queued or running)
    in_flight: usize,

    // worker threads alive, and how many of them are not running a task (they are
    // waiting for one, or about to look for one)
    threads: usize,
    idle: usize,

    // set when the pool is dropped: idle threads exit
    closed: bool,
}

/// Number of threads kept alive while idle (fewer if `max_tasks` is smaller).
const MIN_THREADS: usize = 4;

/// How long an idle thread beyond `MIN_THREADS` waits for a task before exiting.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often `wait_for_slot` re-checks its `stop` flag.
const STOP_POLL: Duration = Duration::from_millis(100);

impl TaskPool {
    pub fn new(max_tasks: usize) -> TaskPool {
        let pool = TaskPool {
            sharing: Arc::new(Sharing {
                state: Mutex::new(State {
                    todo: VecDeque::new(),
                    in_flight: 0,
                    threads: 0,
                    idle: 0,
                    closed: false,
                }),
                task_added: Condvar::new(),
                slot_freed: Condvar::new(),
                max_tasks: max_tasks.max(1),
            }),
        };

        let mut state = pool.sharing.lock();
        for _ in 0..MIN_THREADS.min(pool.sharing.max_tasks) {
            pool.add_thread(&mut state, None);
        }
        drop(state);

        pool
    }

    /// Blocks until fewer than `max_tasks` tasks are in flight.
    ///
    /// Returns `false` as soon as `stop` is set (checked at least every 100 ms).
    pub fn wait_for_slot(&self, stop: &AtomicBool) -> bool {
        let mut state = self.sharing.lock();
        while state.in_flight >= self.sharing.max_tasks && !stop.load(Ordering::Relaxed) {
            state = self
                .sharing
                .slot_freed
                .wait_timeout(state, STOP_POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        !stop.load(Ordering::Relaxed)
    }

    /// Executes a function in a thread: an idle one if there is one, else a new one.
    ///
    /// Does not wait: call `wait_for_slot` first to stay within the bound.
    pub fn spawn(&self, task: Task) {
        let mut state = self.sharing.lock();
        state.in_flight += 1;

        if state.idle > state.todo.len() {
            state.todo.push_back(task);
            self.sharing.task_added.notify_one();
        } else {
            self.add_thread(&mut state, Some(task));
        }
    }

    fn add_thread(&self, state: &mut State, first_task: Option<Task>) {
        let has_task = first_task.is_some();
        let sharing = self.sharing.clone();

        let spawned = thread::Builder::new().spawn(move || {
            let mut worker = Worker {
                sharing: &sharing,
                running: false,
            };
            let mut task = first_task;
            loop {
                let ran_task = match task.take() {
                    Some(task) => {
                        worker.running = true;
                        task();
                        worker.running = false;
                        true
                    }
                    None => false,
                };
                task = worker.finish_and_wait(ran_task);
                if task.is_none() {
                    return;
                }
            }
        });

        match spawned {
            Ok(_) => {
                state.threads += 1;
                if !has_task {
                    state.idle += 1;
                }
            }
            Err(e) => {
                // the task (and the connection it owns) is dropped
                log::error!("Could not start a connection thread: {}", e);
                if has_task {
                    state.in_flight -= 1;
                }
            }
        }
    }
}

impl Sharing {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The state of one worker thread; gives its slot and its thread count back if it panics.
struct Worker<'a> {
    sharing: &'a Sharing,
    running: bool,
}

impl Worker<'_> {
    /// Gives back the slot of the task just run (if any), then waits for the next task.
    /// Returns `None` if this thread should exit.
    fn finish_and_wait(&mut self, ran_task: bool) -> Option<Task> {
        let mut state = self.sharing.lock();
        if ran_task {
            state.in_flight -= 1;
            state.idle += 1;
            self.sharing.slot_freed.notify_one();
        }

        let mut timed_out = false;
        loop {
            if let Some(task) = state.todo.pop_front() {
                state.idle -= 1;
                return Some(task);
            }
            if state.closed || (timed_out && state.threads > MIN_THREADS) {
                state.idle -= 1;
                state.threads -= 1;
                return None;
            }

            let (new_state, wait) = self
                .sharing
                .task_added
                .wait_timeout(state, IDLE_TIMEOUT)
                .unwrap_or_else(|e| e.into_inner());
            state = new_state;
            timed_out = wait.timed_out();
        }
    }
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        if self.running {
            // the task panicked: this thread is going away
            let mut state = self.sharing.lock();
            state.in_flight -= 1;
            state.threads -= 1;
            self.sharing.slot_freed.notify_one();
        }
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        self.sharing.lock().closed = true;
        self.sharing.task_added.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::TaskPool;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn runs_at_most_max_tasks_on_at_most_max_threads() {
        let pool = TaskPool::new(3);
        let stop = AtomicBool::new(false);
        let running = Arc::new(AtomicUsize::new(0));
        let most_running = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicUsize::new(0));

        for _ in 0..30 {
            assert!(pool.wait_for_slot(&stop));
            let (running, most_running, done) =
                (running.clone(), most_running.clone(), done.clone());
            pool.spawn(Box::new(move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most_running.fetch_max(now, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(10));
                running.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            }));
            let state = pool.sharing.lock();
            assert!(state.in_flight <= 3);
            assert!(state.threads <= 3, "{} threads", state.threads);
        }

        while done.load(Ordering::SeqCst) < 30 {
            thread::sleep(Duration::from_millis(5));
        }
        assert!(most_running.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn wait_for_slot_returns_when_stopped() {
        let pool = TaskPool::new(1);
        let stop = AtomicBool::new(false);
        assert!(pool.wait_for_slot(&stop));
        pool.spawn(Box::new(|| thread::sleep(Duration::from_secs(2))));
        stop.store(true, Ordering::SeqCst);
        let started = std::time::Instant::now();
        assert!(!pool.wait_for_slot(&stop));
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn a_panicking_task_gives_its_slot_back() {
        let pool = TaskPool::new(1);
        let stop = AtomicBool::new(false);
        assert!(pool.wait_for_slot(&stop));
        pool.spawn(Box::new(|| panic!("task panics (expected by this test)")));
        assert!(pool.wait_for_slot(&stop));
        let ran = Arc::new(AtomicBool::new(false));
        let ran2 = ran.clone();
        pool.spawn(Box::new(move || ran2.store(true, Ordering::SeqCst)));
        assert!(pool.wait_for_slot(&stop));
        thread::sleep(Duration::from_millis(50));
        assert!(ran.load(Ordering::SeqCst));
    }
}
