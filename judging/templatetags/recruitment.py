"""The queue's notice for a judge who joined by an invite: their completion code once their trials are done."""

from django import template

from judging.recruitment import completion_of

register = template.Library()


@register.inclusion_tag("judging/recruitment/completion.html")
def completion_notice(judge):
    return {"completion": completion_of(judge) if judge.is_authenticated else None}
