!> Fortran API of atmocorrect: a learned correction applied to a model's state at every step.
!>
!> Procedural, in the style of netCDF-Fortran. Every call takes optional `stat` and `errmsg`:
!> with `stat` present a failure returns a non-zero code (the ATMOCORRECT_E* parameters) and a
!> message naming the problem, and the state is left untouched; with `stat` absent the library
!> prints a rank-tagged message and calls MPI_Abort on the host's communicator. It never calls
!> `stop` or `exit`.
!>
!> Registered arrays are used in place, never copied: give them the `target` attribute (or make
!> them allocatable module variables) and keep them allocated until atmocorrect_finalize. Pass
!> the interior of an array with halos as a section, e.g. `t(1:snx, 1:sny, :)`.
module atmocorrect
  use, intrinsic :: iso_c_binding, only: c_int, c_int64_t, c_size_t, c_char, c_double, c_ptr, &
                                         c_null_ptr, c_null_char, c_loc
  use, intrinsic :: iso_fortran_env, only: real32, real64, int64
  implicit none
  private

  integer, parameter, public :: ATMOCORRECT_SUCCESS = 0
  integer, parameter, public :: ATMOCORRECT_ECHECKPOINT = 1
  integer, parameter, public :: ATMOCORRECT_EFIELD = 2
  integer, parameter, public :: ATMOCORRECT_EGRID = 3
  integer, parameter, public :: ATMOCORRECT_ESTATE = 4
  integer, parameter, public :: ATMOCORRECT_EMODEL = 5
  integer, parameter, public :: ATMOCORRECT_EPYTHON = 7
  integer, parameter, public :: ATMOCORRECT_EREMOTE = 8
  integer, parameter, public :: ATMOCORRECT_EUSAGE = 9
  !> Longest message the library writes; a shorter errmsg receives its beginning.
  integer, parameter, public :: ATMOCORRECT_MSG_LEN = 2048

  !> One loaded corrector. Mirrors `atmocorrect_t` of atmocorrect.h.
  type, bind(C), public :: atmocorrect_t
    integer(c_int) :: handle = 0
    integer(c_int) :: comm = 0
  end type atmocorrect_t

  public :: atmocorrect_init, atmocorrect_set_grid, atmocorrect_add_field, atmocorrect_step, &
            atmocorrect_finalize, atmocorrect_get_increment, atmocorrect_field_address

  !> Register a real32 or real64 array (rank 1 to 3) to be corrected in place.
  interface atmocorrect_add_field
    module procedure add_field_real32, add_field_real64
  end interface atmocorrect_add_field

  !> Copy the last increment the library computed for a registered field.
  interface atmocorrect_get_increment
    module procedure get_increment_real32, get_increment_real64
  end interface atmocorrect_get_increment

  interface
    function c_init(ac, checkpoint_dir, comm, mode, errmsg, errlen) &
        bind(C, name="atmocorrect_f_init") result(rc)
      import :: atmocorrect_t, c_char, c_int, c_size_t
      type(atmocorrect_t), intent(inout) :: ac
      character(kind=c_char), intent(in) :: checkpoint_dir(*), mode(*)
      integer(c_int), intent(in) :: comm
      character(kind=c_char), intent(inout) :: errmsg(*)
      integer(c_size_t), value, intent(in) :: errlen
      integer(c_int) :: rc
    end function c_init

    function c_set_grid(ac, ndim, global_shape, local_offset, lon, nlon, lat, nlat, levels, &
        nlev, errmsg, errlen) bind(C, name="atmocorrect_set_grid") result(rc)
      import :: atmocorrect_t, c_char, c_int, c_int64_t, c_size_t, c_ptr
      type(atmocorrect_t), intent(inout) :: ac
      integer(c_int), value, intent(in) :: ndim
      integer(c_int64_t), intent(in) :: global_shape(*), local_offset(*)
      type(c_ptr), value, intent(in) :: lon, lat, levels
      integer(c_int64_t), value, intent(in) :: nlon, nlat, nlev
      character(kind=c_char), intent(inout) :: errmsg(*)
      integer(c_size_t), value, intent(in) :: errlen
      integer(c_int) :: rc
    end function c_set_grid

    function c_add_field(ac, name, array, units, errmsg, errlen) &
        bind(C, name="atmocorrect_f_add_field") result(rc)
      import :: atmocorrect_t, c_char, c_int, c_size_t
      type(atmocorrect_t), intent(inout) :: ac
      character(kind=c_char), intent(in) :: name(*), units(*)
      type(*), intent(inout) :: array(..)
      character(kind=c_char), intent(inout) :: errmsg(*)
      integer(c_size_t), value, intent(in) :: errlen
      integer(c_int) :: rc
    end function c_add_field

    function c_get_increment(ac, name, array, errmsg, errlen) &
        bind(C, name="atmocorrect_f_get_increment") result(rc)
      import :: atmocorrect_t, c_char, c_int, c_size_t
      type(atmocorrect_t), intent(inout) :: ac
      character(kind=c_char), intent(in) :: name(*)
      type(*), intent(inout) :: array(..)
      character(kind=c_char), intent(inout) :: errmsg(*)
      integer(c_size_t), value, intent(in) :: errlen
      integer(c_int) :: rc
    end function c_get_increment

    function c_field_address(ac, name, address, errmsg, errlen) &
        bind(C, name="atmocorrect_f_field_address") result(rc)
      import :: atmocorrect_t, c_char, c_int, c_int64_t, c_size_t
      type(atmocorrect_t), intent(inout) :: ac
      character(kind=c_char), intent(in) :: name(*)
      integer(c_int64_t), intent(out) :: address
      character(kind=c_char), intent(inout) :: errmsg(*)
      integer(c_size_t), value, intent(in) :: errlen
      integer(c_int) :: rc
    end function c_field_address

    function c_step(ac, model_time, dt, errmsg, errlen) bind(C, name="atmocorrect_step") result(rc)
      import :: atmocorrect_t, c_char, c_int, c_double, c_size_t
      type(atmocorrect_t), intent(inout) :: ac
      real(c_double), value, intent(in) :: model_time, dt
      character(kind=c_char), intent(inout) :: errmsg(*)
      integer(c_size_t), value, intent(in) :: errlen
      integer(c_int) :: rc
    end function c_step

    function c_finalize(ac, errmsg, errlen) bind(C, name="atmocorrect_finalize") result(rc)
      import :: atmocorrect_t, c_char, c_int, c_size_t
      type(atmocorrect_t), intent(inout) :: ac
      character(kind=c_char), intent(inout) :: errmsg(*)
      integer(c_size_t), value, intent(in) :: errlen
      integer(c_int) :: rc
    end function c_finalize

    subroutine c_abort(ac, status, message) bind(C, name="atmocorrect_abort")
      import :: atmocorrect_t, c_char, c_int
      type(atmocorrect_t), intent(in) :: ac
      integer(c_int), value, intent(in) :: status
      character(kind=c_char), intent(in) :: message(*)
    end subroutine c_abort
  end interface

contains

  !> Load a checkpoint directory on every rank of `comm` (a Fortran MPI communicator handle;
  !> with mpi_f08 pass `comm%MPI_VAL`). `mode` overrides the checkpoint's run mode:
  !> "apply", "diagnose" or "off". Collective.
  subroutine atmocorrect_init(ac, checkpoint_dir, comm, stat, errmsg, mode)
    type(atmocorrect_t), intent(inout) :: ac
    character(len=*), intent(in) :: checkpoint_dir
    integer, intent(in) :: comm
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=*), intent(in), optional :: mode
    character(kind=c_char) :: cmsg(ATMOCORRECT_MSG_LEN)
    integer(c_int) :: rc, ccomm

    ccomm = int(comm, c_int)
    ac%comm = ccomm
    cmsg = c_null_char
    if (present(mode)) then
      rc = c_init(ac, c_string(checkpoint_dir), ccomm, c_string(mode), cmsg, size(cmsg, kind=c_size_t))
    else
      rc = c_init(ac, c_string(checkpoint_dir), ccomm, c_string(""), cmsg, size(cmsg, kind=c_size_t))
    end if
    call finish(ac, rc, cmsg, stat, errmsg)
  end subroutine atmocorrect_init

  !> Declare the global domain (`global_shape`, in the fields' dimension order) and where this
  !> rank's block starts (`local_offset`, 0-based). Optional coordinates lon, lat, levels.
  subroutine atmocorrect_set_grid(ac, global_shape, local_offset, stat, errmsg, lon, lat, levels)
    type(atmocorrect_t), intent(inout) :: ac
    integer, intent(in) :: global_shape(:), local_offset(:)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    real(real64), intent(in), optional :: lon(:), lat(:), levels(:)
    character(kind=c_char) :: cmsg(ATMOCORRECT_MSG_LEN)
    integer(c_int64_t), allocatable :: gshape(:), offset(:)
    real(c_double), allocatable, target :: clon(:), clat(:), clev(:)
    type(c_ptr) :: plon, plat, plev
    integer(c_int) :: rc

    cmsg = c_null_char
    if (size(global_shape) /= size(local_offset)) then
      call set_message(cmsg, "atmocorrect_set_grid: global_shape and local_offset differ in length")
      call finish(ac, int(ATMOCORRECT_EUSAGE, c_int), cmsg, stat, errmsg)
      return
    end if
    gshape = int(global_shape, c_int64_t)
    offset = int(local_offset, c_int64_t)
    plon = c_null_ptr
    plat = c_null_ptr
    plev = c_null_ptr
    allocate (clon(0), clat(0), clev(0))
    if (present(lon)) then
      clon = real(lon, c_double)
      if (size(clon) > 0) plon = c_loc(clon)
    end if
    if (present(lat)) then
      clat = real(lat, c_double)
      if (size(clat) > 0) plat = c_loc(clat)
    end if
    if (present(levels)) then
      clev = real(levels, c_double)
      if (size(clev) > 0) plev = c_loc(clev)
    end if
    rc = c_set_grid(ac, int(size(gshape), c_int), gshape, offset, plon, size(clon, kind=c_int64_t), &
                    plat, size(clat, kind=c_int64_t), plev, size(clev, kind=c_int64_t), cmsg, &
                    size(cmsg, kind=c_size_t))
    call finish(ac, rc, cmsg, stat, errmsg)
  end subroutine atmocorrect_set_grid

  subroutine add_field_real32(ac, name, array, stat, errmsg, units)
    type(atmocorrect_t), intent(inout) :: ac
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: array(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=*), intent(in), optional :: units
    call add_field_any(ac, name, array, stat, errmsg, units)
  end subroutine add_field_real32

  subroutine add_field_real64(ac, name, array, stat, errmsg, units)
    type(atmocorrect_t), intent(inout) :: ac
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: array(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=*), intent(in), optional :: units
    call add_field_any(ac, name, array, stat, errmsg, units)
  end subroutine add_field_real64

  !> The kind-independent part: the descriptor carries the kind to the C layer.
  subroutine add_field_any(ac, name, array, stat, errmsg, units)
    type(atmocorrect_t), intent(inout) :: ac
    character(len=*), intent(in) :: name
    type(*), intent(inout), target :: array(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(len=*), intent(in), optional :: units
    character(kind=c_char) :: cmsg(ATMOCORRECT_MSG_LEN)
    integer(c_int) :: rc

    cmsg = c_null_char
    if (present(units)) then
      rc = c_add_field(ac, c_string(name), array, c_string(units), cmsg, size(cmsg, kind=c_size_t))
    else
      rc = c_add_field(ac, c_string(name), array, c_string(""), cmsg, size(cmsg, kind=c_size_t))
    end if
    call finish(ac, rc, cmsg, stat, errmsg)
  end subroutine add_field_any

  !> Correct every registered field in place (mode "apply"), or only compute and record the
  !> increments ("diagnose"). `model_time` and `dt` in seconds. Collective.
  subroutine atmocorrect_step(ac, model_time, dt, stat, errmsg)
    type(atmocorrect_t), intent(inout) :: ac
    real(real64), intent(in) :: model_time, dt
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(kind=c_char) :: cmsg(ATMOCORRECT_MSG_LEN)
    integer(c_int) :: rc

    cmsg = c_null_char
    rc = c_step(ac, real(model_time, c_double), real(dt, c_double), cmsg, size(cmsg, kind=c_size_t))
    call finish(ac, rc, cmsg, stat, errmsg)
  end subroutine atmocorrect_step

  subroutine get_increment_real32(ac, name, increment, stat, errmsg)
    type(atmocorrect_t), intent(inout) :: ac
    character(len=*), intent(in) :: name
    real(real32), intent(inout), target :: increment(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call get_increment_any(ac, name, increment, stat, errmsg)
  end subroutine get_increment_real32

  subroutine get_increment_real64(ac, name, increment, stat, errmsg)
    type(atmocorrect_t), intent(inout) :: ac
    character(len=*), intent(in) :: name
    real(real64), intent(inout), target :: increment(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    call get_increment_any(ac, name, increment, stat, errmsg)
  end subroutine get_increment_real64

  subroutine get_increment_any(ac, name, increment, stat, errmsg)
    type(atmocorrect_t), intent(inout) :: ac
    character(len=*), intent(in) :: name
    type(*), intent(inout), target :: increment(..)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(kind=c_char) :: cmsg(ATMOCORRECT_MSG_LEN)
    integer(c_int) :: rc

    cmsg = c_null_char
    rc = c_get_increment(ac, c_string(name), increment, cmsg, size(cmsg, kind=c_size_t))
    call finish(ac, rc, cmsg, stat, errmsg)
  end subroutine get_increment_any

  !> The address at which the library reads and writes a registered field: equal to
  !> `loc()` of the field's first interior element when nothing was copied.
  subroutine atmocorrect_field_address(ac, name, address, stat, errmsg)
    type(atmocorrect_t), intent(inout) :: ac
    character(len=*), intent(in) :: name
    integer(int64), intent(out) :: address
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(kind=c_char) :: cmsg(ATMOCORRECT_MSG_LEN)
    integer(c_int64_t) :: caddress
    integer(c_int) :: rc

    cmsg = c_null_char
    caddress = 0
    rc = c_field_address(ac, c_string(name), caddress, cmsg, size(cmsg, kind=c_size_t))
    address = int(caddress, int64)
    call finish(ac, rc, cmsg, stat, errmsg)
  end subroutine atmocorrect_field_address

  !> Release the corrector. The embedded interpreter stays up for later atmocorrect_init calls.
  subroutine atmocorrect_finalize(ac, stat, errmsg)
    type(atmocorrect_t), intent(inout) :: ac
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    character(kind=c_char) :: cmsg(ATMOCORRECT_MSG_LEN)
    integer(c_int) :: rc

    cmsg = c_null_char
    rc = c_finalize(ac, cmsg, size(cmsg, kind=c_size_t))
    call finish(ac, rc, cmsg, stat, errmsg)
  end subroutine atmocorrect_finalize

  ! ---------------------------------------------------------------- helpers

  pure function c_string(text) result(out)
    character(len=*), intent(in) :: text
    character(kind=c_char, len=len_trim(text) + 1) :: out
    out = trim(text)//c_null_char
  end function c_string

  subroutine set_message(cmsg, text)
    character(kind=c_char), intent(inout) :: cmsg(:)
    character(len=*), intent(in) :: text
    integer :: i, n
    n = min(len(text), size(cmsg) - 1)
    do i = 1, n
      cmsg(i) = text(i:i)
    end do
    cmsg(n + 1) = c_null_char
  end subroutine set_message

  !> Return the status through `stat`/`errmsg`, or abort with the message when `stat` is absent.
  subroutine finish(ac, rc, cmsg, stat, errmsg)
    type(atmocorrect_t), intent(in) :: ac
    integer(c_int), intent(in) :: rc
    character(kind=c_char), intent(in) :: cmsg(:)
    integer, intent(out), optional :: stat
    character(len=*), intent(out), optional :: errmsg
    integer :: i

    if (present(errmsg)) then
      errmsg = ""
      if (rc /= 0) then
        do i = 1, min(size(cmsg), len(errmsg))
          if (cmsg(i) == c_null_char) exit
          errmsg(i:i) = cmsg(i)
        end do
      end if
    end if
    if (present(stat)) then
      stat = int(rc)
    else if (rc /= 0) then
      call c_abort(ac, rc, cmsg)
    end if
  end subroutine finish

end module atmocorrect
