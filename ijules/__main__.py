from ijules.cli import main

main()
