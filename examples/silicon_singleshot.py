"""Single-shot SOREP of diamond silicon with the real pw.x, stored in your AiiDA profile.

Run with ``aiida-sorep setup`` done first::

    python examples/silicon_singleshot.py [PROFILE]
"""

import sys

from aiida_sorep.cli.demo import run_demo

if __name__ == '__main__':
    run_demo(sys.argv[1] if len(sys.argv) > 1 else 'sorep')
