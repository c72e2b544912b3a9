from improvd.cli import main

main()
