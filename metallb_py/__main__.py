from metallb_py.cli import main

main()
