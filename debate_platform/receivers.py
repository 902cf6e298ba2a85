"""A user saved or deleted, by any path (admin, shell, changepassword, a join by invite), is dropped from the
cache of request users (debate_platform/auth.py)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .auth import forget_user

User = get_user_model()


@receiver(post_save, sender=User, dispatch_uid="debate_platform_user_saved")
def user_saved(sender, instance, **kwargs):
    forget_user(instance.pk)


@receiver(post_delete, sender=User, dispatch_uid="debate_platform_user_deleted")
def user_deleted(sender, instance, **kwargs):
    forget_user(instance.pk)
