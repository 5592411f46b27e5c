from lsr.cli import main

main()
