from multihot.cli.app import main

main()
