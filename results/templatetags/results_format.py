from django import template

from results.throughput import readable_years

register = template.Library()


@register.filter
def num(value):
    """Readable numbers: thousands separators, and scientific notation beside big ones."""
    if value is None or value != value:  # None or NaN
        return "—"
    value = float(value)
    if abs(value) >= 1e6:
        return f"{value:,.0f} ({value:.2e})"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


@register.filter
def pct(value):
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{100 * float(value):.1f}%"


@register.filter
def points(value):
    """A difference of two shares, in percentage points with its sign (a true minus; never "-0.0").

    Cut to ±100 points, the most two shares can differ by: a t interval resting on 2 judges (1 degree of
    freedom) can reach past it, and tests read the interval's width, so it is cut where it is shown."""
    if value is None or value != value:
        return "—"
    return points_per(min(1.0, max(-1.0, float(value))))


@register.filter
def points_per(value):
    """A change in a share per unit of something (a slope), in percentage points with its sign: not cut."""
    if value is None or value != value:
        return "—"
    rounded = round(100 * float(value), 1)
    return f"{'−' if rounded < 0 else '+'}{abs(rounded):.1f} pts"


@register.filter
def pvalue(value):
    if value is None or value != value:
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


@register.filter
def p_equals(value):
    """ "p = 0.012" or "p < 0.001", for use in a sentence."""
    shown = pvalue(value)
    return f"p {shown}" if shown.startswith("<") else f"p = {shown}"


@register.filter
def years(value):
    """A duration given in years, in a readable unit (results.throughput.readable_years)."""
    if value is None:
        return "—"
    return readable_years(float(value))
