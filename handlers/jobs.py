"""`/finetune status`, `/finetune jobs`, `/finetune cancel`."""

from __future__ import annotations

from bot import job_views
from bot.errors import UsageError
from bot.mrkdwn import escape
from handlers.commands import CommandRequest, Subcommand


async def status(request: CommandRequest) -> None:
    reference = request.args.split()[0] if request.args.split() else None
    text, card = await job_views.status_blocks(request.services, team_id=request.team_id, reference=reference)
    await request.respond(text=text, blocks=card, response_type="ephemeral")


async def jobs(request: CommandRequest) -> None:
    text, listing = await job_views.jobs_list_blocks(request.services, team_id=request.team_id)
    await request.respond(text=text, blocks=listing, response_type="ephemeral")


async def cancel(request: CommandRequest) -> None:
    words = request.args.split()
    if len(words) != 1:
        raise UsageError(f"Which job? Usage: `{escape('/finetune cancel <job>')}` (see `/finetune jobs`).")
    card = await job_views.cancel_confirmation(
        request.services, team_id=request.team_id, user_id=request.user_id, reference=words[0]
    )
    await request.respond(text="Cancel this job?", blocks=card, response_type="ephemeral")


SUBCOMMANDS = [
    Subcommand("status", "status [job]", "a job's progress (the newest one by default)", status),
    Subcommand("jobs", "jobs", "the team's recent jobs with status and progress", jobs),
    Subcommand("cancel", "cancel <job>", "cancel a running job (its requester or an admin; asks first)", cancel),
]
