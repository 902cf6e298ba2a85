"""What the judging domain announces. The generation app listens (generation/receivers.py), so judging
never imports it: dependencies run one way. Both are sent after the transaction commits."""

from django.dispatch import Signal

# An experiment has turns ready to generate (launch, a live trial opened, a judge's move, a retry,
# a re-queue). Keyword argument: experiment_id. Receivers return whether the work was sent.
turns_pending = Signal()

# A sandwiching experiment needs its model-alone baseline. Keyword argument: experiment_id.
model_alone_requested = Signal()
