from django import template

register = template.Library()


@register.filter
def num(value):
    """Readable numbers: thousands separators, and scientific notation beside big ones."""
    if value is None:
        return "—"
    value = float(value)
    if abs(value) >= 1e6:
        return f"{value:,.0f} ({value:.2e})"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"
