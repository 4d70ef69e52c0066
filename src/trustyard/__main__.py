from trustyard.cli.main import main

main()
