!> A toy gridded atmosphere: temperature t, humidity q (lon x lat x lev) and surface pressure ps
!> (lon x lat) on one rank's block, with `halo` points around it. Horizontal diffusion (which
!> reads the halo) and relaxation towards a latitude-dependent profile. No MPI in here: the
!> halo is filled by the caller (gridded_halo under MPI, or fill_halo_periodic on one process),
!> so f90wrap can wrap this module for Python drivers (bindings/).
module gridded_model
  implicit none
  private

  integer, parameter, public :: dp = kind(1.0d0), sp = kind(1.0)
  integer, parameter, public :: halo = 1

  integer, public :: snx = 0, sny = 0, nz = 0   !< local interior extents
  integer, public :: gnx = 0, gny = 0           !< global extents
  integer, public :: i0 = 0, j0 = 0             !< 0-based offset of this block
  real(dp), allocatable, target, public :: t(:, :, :)
  real(sp), allocatable, target, public :: q(:, :, :)
  real(dp), allocatable, target, public :: ps(:, :)

  public :: model_init, model_physics_step, fill_halo_periodic, model_free

contains

  !> Allocate and set the initial state of the block [i0, i0+nx) x [j0, j0+ny).
  subroutine model_init(nx, ny, nlev, global_nx, global_ny, offset_x, offset_y)
    integer, intent(in) :: nx, ny, nlev, global_nx, global_ny, offset_x, offset_y
    integer :: i, j, k
    real(dp) :: lon, lat

    call model_free()
    snx = nx; sny = ny; nz = nlev
    gnx = global_nx; gny = global_ny
    i0 = offset_x; j0 = offset_y
    allocate (t(1 - halo:snx + halo, 1 - halo:sny + halo, nz))
    allocate (q(1 - halo:snx + halo, 1 - halo:sny + halo, nz))
    allocate (ps(1 - halo:snx + halo, 1 - halo:sny + halo))
    t = -999.0_dp; q = -999.0_sp; ps = -999.0_dp
    do k = 1, nz
      do j = 1, sny
        do i = 1, snx
          lon = 6.283185307179586_dp * real(i0 + i - 1, dp) / real(gnx, dp)
          lat = 3.141592653589793_dp * (real(j0 + j, dp) - 0.5_dp) / real(gny, dp) - 1.5707963267948966_dp
          t(i, j, k) = 250.0_dp + 30.0_dp * cos(lat) + 5.0_dp * sin(3.0_dp * lon) - 6.5_dp * real(k - 1, dp)
          q(i, j, k) = real(0.01_dp * cos(lat)**2 * exp(-real(k - 1, dp) / 3.0_dp), sp)
        end do
      end do
    end do
    do j = 1, sny
      do i = 1, snx
        ps(i, j) = 101325.0_dp + 800.0_dp * sin(2.0_dp * 6.283185307179586_dp * real(i0 + i - 1, dp) / real(gnx, dp))
      end do
    end do
  end subroutine model_init

  !> One explicit step of diffusion (needs filled halos) and relaxation, length dt seconds.
  subroutine model_physics_step(dt)
    real(dp), intent(in) :: dt
    real(dp), parameter :: kappa = 2.0e-5_dp, tau = 86400.0_dp * 5.0_dp
    real(dp), allocatable :: tn(:, :, :), psn(:, :)
    real(sp), allocatable :: qn(:, :, :)
    integer :: i, j, k
    real(dp) :: lat, teq

    allocate (tn(snx, sny, nz), qn(snx, sny, nz), psn(snx, sny))
    do k = 1, nz
      do j = 1, sny
        lat = 3.141592653589793_dp * (real(j0 + j, dp) - 0.5_dp) / real(gny, dp) - 1.5707963267948966_dp
        do i = 1, snx
          teq = 255.0_dp + 25.0_dp * cos(lat) - 6.5_dp * real(k - 1, dp)
          tn(i, j, k) = t(i, j, k) + dt * (kappa * (t(i + 1, j, k) + t(i - 1, j, k) + t(i, j + 1, k) &
                        + t(i, j - 1, k) - 4.0_dp * t(i, j, k)) + (teq - t(i, j, k)) / tau)
          qn(i, j, k) = q(i, j, k) + real(dt * kappa, sp) * (q(i + 1, j, k) + q(i - 1, j, k) &
                        + q(i, j + 1, k) + q(i, j - 1, k) - 4.0_sp * q(i, j, k))
        end do
      end do
    end do
    do j = 1, sny
      do i = 1, snx
        psn(i, j) = ps(i, j) + dt * kappa * (ps(i + 1, j) + ps(i - 1, j) + ps(i, j + 1) + ps(i, j - 1) - 4.0_dp * ps(i, j))
      end do
    end do
    t(1:snx, 1:sny, :) = tn
    q(1:snx, 1:sny, :) = qn
    ps(1:snx, 1:sny) = psn
  end subroutine model_physics_step

  !> Halo fill for a single process owning the whole, doubly periodic domain.
  subroutine fill_halo_periodic()
    t(0, :, :) = t(snx, :, :); t(snx + 1, :, :) = t(1, :, :)
    t(:, 0, :) = t(:, sny, :); t(:, sny + 1, :) = t(:, 1, :)
    q(0, :, :) = q(snx, :, :); q(snx + 1, :, :) = q(1, :, :)
    q(:, 0, :) = q(:, sny, :); q(:, sny + 1, :) = q(:, 1, :)
    ps(0, :) = ps(snx, :); ps(snx + 1, :) = ps(1, :)
    ps(:, 0) = ps(:, sny); ps(:, sny + 1) = ps(:, 1)
  end subroutine fill_halo_periodic

  subroutine model_free()
    if (allocated(t)) deallocate (t)
    if (allocated(q)) deallocate (q)
    if (allocated(ps)) deallocate (ps)
  end subroutine model_free

end module gridded_model
