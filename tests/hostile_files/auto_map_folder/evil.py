import os
open(os.path.join(os.environ.get('EMPATHY_PWNED', '.'), 'auto_map'), 'w').close()
