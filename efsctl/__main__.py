from efsctl.cli import main

main()
