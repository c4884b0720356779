from pathdep.cli import main

main()
