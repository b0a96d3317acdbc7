;;;; Call a driver that the dump loaded into the definitions core:
;;;;   sbcl --core CORE --script call.lisp PACKAGE:FUNCTION ARG...
;;;; so that no compile pays for reading and compiling the driver's source again.
(plait-lisp:call (second sb-ext:*posix-argv*) (cddr sb-ext:*posix-argv*))
