"""Protocol state machines: pure Python, no Django or torch imports."""
