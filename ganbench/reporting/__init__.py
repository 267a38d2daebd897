"""Reading results back: leaderboards (``ganbench report``), two-model comparisons (``ganbench compare``)
and quality regression gates (``ganbench baseline save`` / ``ganbench check``), all from tracked runs."""
