(in-package :plait-grovel)

(include "errno.h")

(constant (+eintr+ "EINTR"))
