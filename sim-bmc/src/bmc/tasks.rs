//! Long-running operations (firmware updates) exposed through the TaskService; progress is derived from
//! tokio's clock when a task is read, so no timer per task is needed.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// What a task does when it completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEffect {
    /// Sets the BMC firmware version (or BIOS version when `bios`).
    Firmware { version: String, bios: bool },
    /// Fails with this message.
    Fail { message: String },
}

#[derive(Debug, Clone)]
pub struct Task {
    pub id: String,
    pub name: String,
    pub started: DateTime<Utc>,
    pub ended: Option<DateTime<Utc>>,
    pub state: &'static str,
    pub percent: u32,
    pub message: String,
    pub effect: TaskEffect,
    start: Instant,
    duration: Duration,
    applied: bool,
}

#[derive(Default)]
pub struct TaskStore {
    tasks: Mutex<Vec<Task>>,
}

/// Tasks kept per BMC; older completed ones are dropped first.
const MAX_TASKS: usize = 32;

impl TaskStore {
    pub fn create(
        &self,
        name: &str,
        effect: TaskEffect,
        duration: Duration,
        now: DateTime<Utc>,
    ) -> Task {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        if tasks.len() >= MAX_TASKS
            && let Some(pos) = tasks.iter().position(|t| t.ended.is_some())
        {
            tasks.remove(pos);
        }
        let id = tasks
            .last()
            .and_then(|t| t.id.parse::<u64>().ok())
            .map_or(1, |n| n + 1)
            .to_string();
        let task = Task {
            id,
            name: name.to_string(),
            started: now,
            ended: None,
            state: "Running",
            percent: 0,
            message: "The task is running.".into(),
            effect,
            start: Instant::now(),
            duration,
            applied: false,
        };
        tasks.push(task.clone());
        task
    }

    /// Advances every task to the current time; returns effects of tasks that just completed.
    pub fn settle(&self, now: DateTime<Utc>) -> Vec<TaskEffect> {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed_now = Instant::now();
        let mut done = Vec::new();
        for t in tasks.iter_mut().filter(|t| !t.applied) {
            let elapsed = elapsed_now.saturating_duration_since(t.start);
            if elapsed >= t.duration {
                t.applied = true;
                t.percent = 100;
                t.ended = Some(now);
                match &t.effect {
                    TaskEffect::Fail { message } => {
                        t.state = "Exception";
                        t.message = message.clone();
                    }
                    TaskEffect::Firmware { .. } => {
                        t.state = "Completed";
                        t.message = "The task successfully completed.".into();
                    }
                }
                done.push(t.effect.clone());
            } else {
                let ratio = elapsed.as_secs_f64() / t.duration.as_secs_f64().max(f64::EPSILON);
                t.percent = (ratio * 100.0) as u32;
            }
        }
        done
    }

    pub fn list(&self) -> Vec<Task> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, id: &str) -> Option<Task> {
        self.list().into_iter().find(|t| t.id == id)
    }
}
