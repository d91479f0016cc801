from encdec.cli.train import main

main()
