(defparameter cl-user::*a-loaded* t)
