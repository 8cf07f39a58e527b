"""Keyword-only async data-access functions, one module per aggregate.

Each function takes the session it works in, so the caller decides the transaction. Functions that
guard an invariant (an event handled once, …) rely on the database's unique constraints, which
hold across processes and replicas, rather than on a read-then-write check. Callers use this
package as one namespace (``repositories.add_job``); the modules say where each function lives.
"""

from storage.repositories.candidates import (
    get_candidate as get_candidate,
)
from storage.repositories.candidates import (
    keep_candidate as keep_candidate,
)
from storage.repositories.candidates import (
    pending_candidates as pending_candidates,
)
from storage.repositories.candidates import (
    pending_candidates_on as pending_candidates_on,
)
from storage.repositories.candidates import (
    pending_votes as pending_votes,
)
from storage.repositories.candidates import (
    publish_candidates as publish_candidates,
)
from storage.repositories.candidates import (
    set_candidate_status as set_candidate_status,
)
from storage.repositories.candidates import (
    withdraw_candidate as withdraw_candidate,
)
from storage.repositories.chats import (
    add_chat_thread as add_chat_thread,
)
from storage.repositories.chats import (
    add_chat_turn as add_chat_turn,
)
from storage.repositories.chats import (
    get_chat_thread as get_chat_thread,
)
from storage.repositories.chats import (
    list_chat_turns as list_chat_turns,
)
from storage.repositories.chats import (
    mark_thread_recorded as mark_thread_recorded,
)
from storage.repositories.common import (
    ORPHANS as ORPHANS,
)
from storage.repositories.common import (
    Leased as Leased,
)
from storage.repositories.common import (
    release_leases as release_leases,
)
from storage.repositories.common import (
    renew_leases as renew_leases,
)
from storage.repositories.datasets import (
    add_dataset as add_dataset,
)
from storage.repositories.datasets import (
    add_file_intake as add_file_intake,
)
from storage.repositories.datasets import (
    claim_stalled_intakes as claim_stalled_intakes,
)
from storage.repositories.datasets import (
    find_dataset_by_sha as find_dataset_by_sha,
)
from storage.repositories.datasets import (
    find_datasets_by_name as find_datasets_by_name,
)
from storage.repositories.datasets import (
    finish_file_intake as finish_file_intake,
)
from storage.repositories.datasets import (
    get_dataset as get_dataset,
)
from storage.repositories.datasets import (
    list_datasets as list_datasets,
)
from storage.repositories.deployments import (
    add_deployment as add_deployment,
)
from storage.repositories.deployments import (
    deployments_in as deployments_in,
)
from storage.repositories.deployments import (
    live_deployment as live_deployment,
)
from storage.repositories.deployments import (
    move_deployment as move_deployment,
)
from storage.repositories.evaluations import (
    add_evaluation as add_evaluation,
)
from storage.repositories.evaluations import (
    add_evaluation_answers as add_evaluation_answers,
)
from storage.repositories.evaluations import (
    claim_evaluations as claim_evaluations,
)
from storage.repositories.evaluations import (
    get_evaluation as get_evaluation,
)
from storage.repositories.evaluations import (
    list_evaluation_answers as list_evaluation_answers,
)
from storage.repositories.evaluations import (
    move_evaluation as move_evaluation,
)
from storage.repositories.evaluations import (
    recent_evaluations as recent_evaluations,
)
from storage.repositories.golden_sets import (
    add_golden_answers as add_golden_answers,
)
from storage.repositories.golden_sets import (
    claim_golden_sets as claim_golden_sets,
)
from storage.repositories.golden_sets import (
    golden_positions_done as golden_positions_done,
)
from storage.repositories.golden_sets import (
    latest_golden_set as latest_golden_set,
)
from storage.repositories.golden_sets import (
    list_golden_answers as list_golden_answers,
)
from storage.repositories.jobs import (
    add_job as add_job,
)
from storage.repositories.jobs import (
    add_job_events as add_job_events,
)
from storage.repositories.jobs import (
    claim_due_jobs as claim_due_jobs,
)
from storage.repositories.jobs import (
    claim_stalled_starts as claim_stalled_starts,
)
from storage.repositories.jobs import (
    committed_spend as committed_spend,
)
from storage.repositories.jobs import (
    count_active_jobs as count_active_jobs,
)
from storage.repositories.jobs import (
    find_job_by_model as find_job_by_model,
)
from storage.repositories.jobs import (
    get_job as get_job,
)
from storage.repositories.jobs import (
    get_job_by_request_id as get_job_by_request_id,
)
from storage.repositories.jobs import (
    latest_job_for_dataset as latest_job_for_dataset,
)
from storage.repositories.jobs import (
    list_job_events as list_job_events,
)
from storage.repositories.jobs import (
    list_jobs as list_jobs,
)
from storage.repositories.jobs import (
    list_models as list_models,
)
from storage.repositories.jobs import (
    mark_job_due as mark_job_due,
)
from storage.repositories.jobs import (
    models_retiring as models_retiring,
)
from storage.repositories.jobs import (
    month_spend as month_spend,
)
from storage.repositories.jobs import (
    move_job_status as move_job_status,
)
from storage.repositories.jobs import (
    release_job as release_job,
)
from storage.repositories.jobs import (
    trainers_at as trainers_at,
)
from storage.repositories.notifications import (
    claim_notification as claim_notification,
)
from storage.repositories.notifications import (
    enqueue_notification as enqueue_notification,
)
from storage.repositories.notifications import (
    finish_notification as finish_notification,
)
from storage.repositories.notifications import (
    pending_notifications as pending_notifications,
)
from storage.repositories.teams import (
    add_audit_entry as add_audit_entry,
)
from storage.repositories.teams import (
    claim_slack_event as claim_slack_event,
)
from storage.repositories.teams import (
    claim_slack_events as claim_slack_events,
)
from storage.repositories.teams import (
    ensure_team as ensure_team,
)
from storage.repositories.teams import (
    has_slack_event as has_slack_event,
)
from storage.repositories.teams import (
    list_audit_entries as list_audit_entries,
)
from storage.repositories.teams import (
    recent_home_viewers as recent_home_viewers,
)
from storage.repositories.teams import (
    record_home_viewer as record_home_viewer,
)
