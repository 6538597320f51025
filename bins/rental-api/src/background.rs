//! The background work of an instance: the job worker, the scheduler and the relay of PostgreSQL's job
//! notifications, started with the HTTP server (`serve`) or alone (`work`), and stopped together on shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rental_service::{Mailer, Services};
use rental_tasks::mail::{self, MailStats, Templates};
use rental_tasks::{Scheduler, Worker, WorkerStats, app};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::settings::Settings;

/// The running background tasks of this instance.
#[derive(Debug)]
pub struct Background {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    worker: Option<Arc<WorkerStats>>,
    mail: Arc<MailStats>,
}

impl Background {
    /// Checks the mail settings, the templates and the schedules, then starts the worker and the scheduler as
    /// `settings` enable them. `grace` bounds how long running jobs may take to finish at shutdown.
    ///
    /// # Errors
    /// A configuration that cannot be used, naming its key (SMTP settings, a template, a cron expression).
    pub fn start(settings: &Settings, services: &Services, grace: Duration) -> anyhow::Result<Self> {
        let (mailer, mail_stats) = mail::build_tracked(&settings.mail).context("mail settings")?;
        let mut tasks = Vec::new();
        if settings.worker.enabled {
            tasks.push(tokio::spawn(check_mailer(mailer.clone())));
        }
        let templates = Arc::new(Templates::new().context("e-mail templates")?);
        let registry = app::registry(services.clone(), mailer, templates, settings.notify.clone());
        let queue = services.jobs.store();
        let scheduler = Scheduler::new(
            queue.database().clone(),
            queue.clone(),
            settings.scheduler.clone(),
            &registry.kinds(),
            settings.jobs.max_attempts,
        )?;
        let stop = CancellationToken::new();
        let mut worker_stats = None;
        if settings.worker.enabled {
            let config = rental_tasks::WorkerConfig { shutdown_grace_secs: grace.as_secs(), ..settings.worker.clone() };
            let worker = Worker::on(&queue, registry, config);
            worker_stats = Some(worker.stats());
            tasks.push(tokio::spawn(worker.run(stop.clone())));
            let relay = queue.clone();
            let relay_stop = stop.clone();
            tasks.push(tokio::spawn(async move { relay.relay_notifications(relay_stop.cancelled_owned()).await }));
        }
        if settings.scheduler.enabled {
            tasks.push(tokio::spawn(scheduler.run(stop.clone())));
        }
        Ok(Self { stop, tasks, worker: worker_stats, mail: mail_stats })
    }

    /// The worker's figures, when this instance runs one.
    pub fn worker_stats(&self) -> Option<Arc<WorkerStats>> {
        self.worker.clone()
    }

    /// What the mailer of the jobs did, for monitoring.
    pub fn mail_stats(&self) -> Arc<MailStats> {
        self.mail.clone()
    }

    /// Stops claiming and scheduling, waits for running jobs (up to the grace period given at start), gives
    /// back the unfinished ones and returns.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            if let Err(err) = task.await {
                tracing::warn!(error = %err, "a background task ended abnormally");
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            _ = interrupt => {}
            () = terminate => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Checks once at start-up that the mailer can reach its server. E-mail is optional to serving: when the SMTP
/// server cannot be reached the process goes on, logs this one warning, and the mail component reports
/// `degraded` until a send or check succeeds; messages wait in the durable queue and are retried.
async fn check_mailer(mailer: Arc<dyn Mailer>) {
    match mailer.check().await {
        Ok(()) => tracing::debug!("the mail server answers"),
        Err(err) => tracing::warn!(
            error = %err,
            "the mail server cannot be reached at start-up: e-mail waits in the job queue and is retried; \
             health reports smtp degraded until a send succeeds"
        ),
    }
}
