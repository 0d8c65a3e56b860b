# lambda section: the sanitizer build of the hello function, which
# tests/it_lambda.sh drives through tests/emulator.py.
check-build: $(B)/hello/bootstrap-san
