//! (tests of this part come with it)
