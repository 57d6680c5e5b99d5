"""``ctmevo run``, ``resume`` and ``status`` for an open-ended campaign (a file with an ``open_ended:`` section)."""

from __future__ import annotations

from pathlib import Path

from search.cli.base import UsageError, say


def run_open_ended(config: object, *, directory: Path | None, fresh: bool) -> int:
    """A new open-ended campaign from a validated config (``--fresh``: over an earlier one in the directory)."""
    from search.campaign.config import CampaignConfig
    from search.campaign.create import clear_directory
    from search.errors import SearchError
    from search.open_ended.driver import OpenEnded
    from search.paths import lock_campaign

    assert isinstance(config, CampaignConfig)
    root = directory or config.directory()
    try:
        if fresh and root.exists():
            with lock_campaign(root):  # refused while another process runs it
                clear_directory(root)
        campaign = OpenEnded.create(config, root)
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    return _run(campaign)


def resume_open_ended(directory: Path) -> int:
    from search.errors import SearchError
    from search.open_ended.driver import OpenEnded

    try:
        campaign = OpenEnded.open(directory)
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    if campaign.finished() or campaign.state.ended:
        say(f"{directory}: the open-ended campaign has ended ({campaign.state.ended or 'its budget is spent'}); "
            f"nothing to resume (raise budget.* in {campaign.paths.config} to give it more)")
        return 0
    return _run(campaign)


def _run(campaign: object) -> int:
    from search.errors import SearchError
    from search.open_ended.driver import OpenEnded

    assert isinstance(campaign, OpenEnded)
    root = campaign.root
    say(f"open-ended campaign {campaign.config.name} in {root}: task {campaign.config.task.name}, difficulty "
        f"axes {', '.join(campaign.axes)}; every task is a campaign in {root / 'tasks'}")
    try:
        campaign.run(say=say)
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    except KeyboardInterrupt:
        say(f"\nStopped in round {campaign.state.rounds + 1}; everything finished is saved.\n"
            f"Continue with:  ctmevo resume {root}")
        return 130
    say("")
    status_open_ended(root)
    return 0


def status_open_ended(directory: Path) -> int:
    """The measures, the tasks and the candidates' verdicts, from the campaign file and the journal alone (works
    while it runs; imports neither torch nor MLflow)."""
    from collections import Counter

    from search.campaign.config import load_campaign_config
    from search.errors import SearchError
    from search.journal import Journal
    from search.open_ended.picture import ProgressPicture
    from search.open_ended.state import OpenEndedState, task_table
    from search.paths import OPEN_ENDED_JOURNAL, CampaignPaths, is_locked

    root = Path(directory)
    try:
        config = load_campaign_config(CampaignPaths(root).config, components=False)  # validated when it started
        if config.open_ended is None:
            raise UsageError(f"{root}: its campaign.yaml has no open_ended: section, but the directory holds "
                             f"{OPEN_ENDED_JOURNAL}; restore the file the campaign was started with")
        s = OpenEndedState.replay(Journal(root / OPEN_ENDED_JOURNAL).read())
    except SearchError as exc:
        raise UsageError(str(exc)) from None
    axes = list(config.open_ended.axes)
    m = s.measures(axes)
    state = "running now" if is_locked(root) else (
        "finished" if s.budget_spent(config.budget, s.elapsed_s) else f"ended ({s.ended})" if s.ended else "stopped")
    say(f"open-ended campaign {config.name} in {root}: {state}, {s.rounds} rounds")
    hardest = ", ".join(f"{a} {m[f'hardest_solved_{a}']:g}" for a in axes if f"hardest_solved_{a}" in m) or "-"
    say(f"  ANNECS {m['annecs']:g} (tasks admitted after the first and solved) · hardest solved: {hardest}")
    say(f"  tasks: {m['tasks_admitted']:g} admitted, {m['tasks_active']:g} active, {m['tasks_solved']:g} solved · "
        f"transfers: {m['transfers_tried']:g} tried, {m['transfers_accepted']:g} accepted")
    say(f"  compute: {s.spent:,.0f} training steps, {s.evaluations:,} evaluations (screens and transfers "
        f"included), elapsed {s.elapsed_s:.0f} s")
    if s.history:
        say("  ANNECS by round: " + " ".join(f"{h.get('annecs', 0):g}" for h in s.history))
    verdicts = Counter((c["why"] or "admitted").split(" (")[0] for c in s.candidates)
    if verdicts:
        say("  candidates: " + ", ".join(f"{n} {why}" for why, n in verdicts.most_common()))
    say("")
    for line in task_table(s, axes).splitlines():
        say("  " + line)
    picture = ProgressPicture(root, axes=axes, solved=config.open_ended.solved, title=config.name, every_s=0)
    if state != "running now":  # a stopped campaign's picture brought up to date (a running one draws its own)
        picture.update(now=True)
    if picture.path.exists():
        say(f"\n  picture (each task's best and ANNECS against compute): {picture.path}")
    say(f"\n  one task's campaign: ctmevo status {root / 'tasks' / 'ID'}")
    return 0
