"""The researchers' audit log: who launched, edited or exported what, and every change of users and permissions.

Below judging in the import layers: judging's admin and commands record through ``audit.record``; audit knows
nothing of experiments."""
