"""Debater line-ups: which configurations speak in each arm, and how debaters are paired. Pure Python.

An arm's line-up is a list of members (a configuration and the role it may take). The experiment's
pairing design turns a debate arm's line-up into *pairings* (honest configuration, adversary
configuration):

- ``self-play``: each member that may take either side argues against itself;
- ``round-robin``: every member that may argue honestly against every member that may argue for the
  wrong answer, itself included (with roles, an honest-vs-adversary matrix);
- ``cross-play``: the same without self-play.

A single-speaker arm (consultancy, a sandwiching assistant) has one pairing per member: that member
speaks, honestly or not as the trial's condition says. The judge-alone arm has one pairing and no
speaker. An arm without members uses the experiment's debater model.

A member may be a *person* (a user with the debater role) instead of a configuration, in the arms
whose protocol lets people speak (debate, consultancy). People pair like configurations, except that
a person never debates themselves: self-play refuses a person, and round-robin leaves out a person's
pairing with themselves.

Every pairing of every arm is a *design cell*: the planner (``judging.assignment.plan_trials``)
rotates cells within each question and balances them per judge, as it does arms; so every cell
gets an equal share of the trials.
"""

from __future__ import annotations

from dataclasses import dataclass

from .protocols.registry import ARMS, PROTOCOLS

SELF_PLAY = "self-play"
ROUND_ROBIN = "round-robin"
CROSS_PLAY = "cross-play"
PAIRINGS = (SELF_PLAY, ROUND_ROBIN, CROSS_PLAY)

BOTH = "both"
HONEST = "honest"
ADVERSARY = "adversary"
ROLES = (BOTH, HONEST, ADVERSARY)


class LineupError(ValueError):
    pass


@dataclass(frozen=True)
class Member:
    """A line-up member: a model configuration's id, or (``config`` None) a person's user id."""

    config: int | None  # a model configuration's id
    role: str = BOTH
    person: int | None = None  # a debater's user id, for a member that is a person

    @property
    def speaker(self) -> tuple[str, int]:
        return ("person", self.person) if self.config is None else ("config", self.config)


@dataclass(frozen=True)
class Cell:
    """One design cell: an arm with who may speak in it, a configuration or a person per side (None: nobody)."""

    arm: str
    honest: int | None
    adversary: int | None
    honest_person: int | None = None
    adversary_person: int | None = None


def _cell(arm: str, honest: Member, adversary: Member) -> Cell:
    return Cell(arm, honest.config, adversary.config, honest.person, adversary.person)


def arm_cells(arm: str, members: list[Member], pairing: str, default_config: int) -> list[Cell]:
    """The design cells of one arm."""
    if pairing not in PAIRINGS:
        raise LineupError(f"unknown pairing design {pairing!r}; choose from {', '.join(PAIRINGS)}")
    if not ARMS[arm].has_speaker:
        if members:
            raise LineupError(f"nobody speaks in the {arm} arm: it takes no line-up")
        return [Cell(arm, None, None)]
    members = members or [Member(default_config)]
    for m in members:
        if (m.config is None) == (m.person is None):
            raise LineupError(f"a member of the {arm} arm's line-up must be a configuration or a person, not both")
    protocol = PROTOCOLS[ARMS[arm].protocol]
    people = [m for m in members if m.person is not None]
    if people and not protocol.people_may_speak:
        raise LineupError(
            f"people do not speak in the {arm} arm ({protocol.label}): a person may debate or consult, "
            "never stand in for a model there"
        )
    speakers = [m.speaker for m in members]
    if len(set(speakers)) != len(speakers):
        raise LineupError(f"the {arm} arm's line-up names a configuration or a person twice")
    if not protocol.two_speakers:
        if any(m.role != BOTH for m in members):
            raise LineupError(
                f"roles are for debaters: the {arm} arm's single speaker is honest or not as each trial's "
                "condition says, so its line-up members take either side"
            )
        return [_cell(arm, m, m) for m in members]
    honest = [m for m in members if m.role in (BOTH, HONEST)]
    adversaries = [m for m in members if m.role in (BOTH, ADVERSARY)]
    if pairing == SELF_PLAY:
        if people:
            raise LineupError(
                f"self-play: a person cannot debate themselves; pair the {arm} arm's people with round-robin "
                "or cross-play"
            )
        pairs = [(m, m) for m in members if m.role == BOTH]
        if len(pairs) != len(members):
            raise LineupError(
                f"self-play: every member of the {arm} arm argues against itself, so each must take either "
                "side (use round-robin for an honest-vs-adversary matrix)"
            )
    else:
        pairs = [
            (h, a)
            for h in honest
            for a in adversaries
            # a person never debates themselves
            if h.speaker != a.speaker or (pairing == ROUND_ROBIN and h.person is None)
        ]
    if not pairs:
        raise LineupError(
            f"{pairing}: the {arm} arm's line-up gives no pairing (it needs a member that can argue honestly "
            "and a different one that can argue for the wrong answer)"
        )
    return [_cell(arm, h, a) for h, a in pairs]


def design_cells(arms: list[str], lineups: dict[str, list[Member]], pairing: str, default_config: int) -> list[Cell]:
    """Every design cell of an experiment, arm by arm in the experiment's order."""
    stray = sorted(set(lineups) - set(arms))
    if stray:
        raise LineupError(f"the line-up names arm {stray[0]!r}, which the experiment does not run")
    return [cell for arm in arms for cell in arm_cells(arm, lineups.get(arm, []), pairing, default_config)]
