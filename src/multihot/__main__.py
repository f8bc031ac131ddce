from multihot.cli import main

main()
