"""python -m kgcelery"""

from kgcelery.cli import main

main()
