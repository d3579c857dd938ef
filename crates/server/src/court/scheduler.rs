//! The court scheduler: fires the workflow's timers (reminders before expiry, lapse checks)
//! with the server's clock as input, every `court.tick_ms`.

use super::*;

/// Fires every timer due at `now` through the workflow and writes what it says. Returns the
/// number of notices sent.
pub async fn run_due(s: &AppState, now: UnixMicros) -> Result<usize, ApiError> {
    let timers = s.store.due_court_timers(now).await?;
    let mut sent = 0;
    for (i, t) in timers.iter().enumerate() {
        // After downtime several reminders of one version may be due: only the latest speaks.
        let superseded = t.kind == "reminder"
            && timers[i + 1..].iter().any(|u| {
                u.kind == "reminder"
                    && u.order_id == t.order_id
                    && u.version == t.version
                    && u.recipient == t.recipient
            });
        // One timer that cannot be handled now is retried next tick; it holds up no other.
        match fire_timer(s, t, superseded, now).await {
            Ok(n) => sent += n,
            Err(e) => {
                tracing::error!(timer = t.id, order = %t.order_id, error = %e.message, "court timer failed; retried next tick")
            }
        }
    }
    Ok(sent)
}

/// Handles one due timer; returns the number of notices it sent.
async fn fire_timer(
    s: &AppState,
    t: &store::CourtTimer,
    superseded: bool,
    now: UnixMicros,
) -> Result<usize, ApiError> {
    if superseded {
        s.store
            .apply_court_step(CourtStep {
                at: now,
                timers_done: vec![t.id],
                ..Default::default()
            })
            .await?;
        return Ok(0);
    }
    let (mut wf, petition, case, _) = order_workflow(s, t.order_id).await?;
    let before = wf.state;
    let event = if t.kind == "reminder" {
        Event::ReminderDue {
            to: parse_recipient(t.recipient.as_deref().unwrap_or("victim")),
            version: t.version,
        }
    } else {
        Event::Tick
    };
    let effects = match wf.handle(event, now) {
        Ok(fx) => fx,
        Err(e) => {
            tracing::error!(timer = t.id, error = %e, "court timer refused by the workflow");
            Vec::new()
        }
    };
    let (mut step, roster) = step_from(
        effects,
        now,
        StepContext {
            case: &case,
            petition: petition.as_ref().map(|p| p.id),
            order: Some(t.order_id),
            key: format!("timer-{}", t.id),
            warning_m: 0.0,
            disclosure_radius_m: 0.0,
            zones: Vec::new(),
            issued_by: None,
            new_order: None,
        },
    );
    step.timers_done = vec![t.id];
    if let Some(p) = &petition
        && wf.state != before
    {
        step.petition = Some((p.id, state_name(wf.state).into()));
        step.event = Some(NewPetitionEvent {
            at: now,
            actor_account_id: None,
            actor_role: "system".into(),
            event: state_name(wf.state).into(),
            reasons: None,
            details: Some(format!("order {} ended", t.order_id)),
        });
    }
    let out = s.store.apply_court_step(step).await?;
    if step_lapsed(&out) {
        tracing::warn!(order = %t.order_id, case = %case.id, "protection lapsed; the victim is told");
    }
    announce(s, &out.notices);
    if roster {
        s.pipeline.sync_roster().await;
    }
    Ok(out.notices.len())
}

fn step_lapsed(out: &store::StepOutcome) -> bool {
    out.notices.iter().any(|n| n.kind == "lapsed")
}

/// Runs [`run_due`] every `court.tick_ms` with the server clock until shutdown.
pub fn spawn_scheduler(
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = std::time::Duration::from_millis(state.config.court.tick_ms.max(10));
        let mut tick = tokio::time::interval(every);
        // Once per cluster: only the leader runs it.
        while state.next_singleton_tick(&mut tick, &mut shutdown).await {
            if let Err(e) = run_due(&state, state.clock.now()).await {
                tracing::error!(error = %e.message, "court scheduler run failed; retried next tick");
            }
        }
    })
}
